import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import utils
from conftest import TEST_SIZE, TRAIN_SIZE, make_mnist_folder, write_idx


# --- data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzipped"])
def test_loader_reads_idx_files_offline(tmp_path, no_download, compress):
    data_dir = make_mnist_folder(tmp_path / "data", compress=compress)
    train_set, test_set = utils.load_mnist_datasets(str(data_dir))
    assert train_set.data.shape == (TRAIN_SIZE, 28, 28) and len(test_set) == TEST_SIZE
    assert train_set.data.dtype == torch.uint8 and 0 <= int(train_set.targets.min()) <= int(train_set.targets.max()) <= 9
    # The gzipped files were unpacked next to themselves, completely: no partial files remain.
    assert not list((data_dir / "MNIST" / "raw").glob("*.partial"))


def test_empty_folder_gives_one_clear_error(tmp_path, no_download):
    with pytest.raises(utils.MNISTNotFoundError) as error:
        utils.load_mnist_datasets(str(tmp_path / "empty"))
    message = str(error.value)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert all(name in message for name in utils.MNIST_FILES)
    assert "\n" not in message


def test_corrupt_file_gives_a_clear_error(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data")
    (data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"not an IDX file")
    with pytest.raises(utils.MNISTNotFoundError, match="could not be read"):
        utils.load_mnist_datasets(str(data_dir))


def test_mismatched_labels_give_a_clear_error(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data")
    write_idx(data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", torch.zeros(7, dtype=torch.uint8).numpy())
    with pytest.raises(utils.MNISTNotFoundError, match="one label each"):
        utils.load_mnist_datasets(str(data_dir))


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_both_pipelines_give_normalised_batches(tiny_mnist, pipeline):
    recipe = dict(utils.RECIPE, pipeline=pipeline, batch_size=100, test_batch_size=64)
    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    images, labels = next(iter(train_loader))
    assert images.shape == (100, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (100,) and labels.dtype == torch.int64
    assert len(train_loader) == math.ceil(TRAIN_SIZE / 100) and len(test_loader) == math.ceil(TEST_SIZE / 64)
    assert sum(len(labels) for _, labels in test_loader) == TEST_SIZE
    # Background pixels (0) map to -mean/std.
    background = -utils.MNIST_MEAN / utils.MNIST_STD
    first_test_images, _ = next(iter(test_loader))
    assert first_test_images.min().item() == pytest.approx(background, abs=1e-5)


def test_unknown_pipeline_is_refused(tiny_mnist):
    with pytest.raises(ValueError, match="Unknown pipeline"):
        utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), dict(utils.RECIPE, pipeline="fancy"))


def test_tensor_loader_visits_every_sample_once_per_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 28, 28).contiguous()
    labels = torch.arange(10)
    loader = utils.TensorLoader(images, labels, batch_size=4, shuffle=True)
    seen = torch.cat([batch_labels for _, batch_labels in loader])
    assert sorted(seen.tolist()) == list(range(10)) and len(loader) == 3
    for batch_images, batch_labels in loader:  # each image still sits with its own label
        pixel = batch_images[:, 0, 0, 0] * utils.MNIST_STD + utils.MNIST_MEAN
        assert torch.allclose(pixel * 255, batch_labels.float(), atol=1e-3)


def test_random_affine_is_affine_grid_written_out():
    images = torch.rand(6, 1, 28, 28)
    settings = dict(max_rotation=15.0, max_shift=0.1, scale_range=(0.8, 1.2))
    torch.manual_seed(3)
    augmented = utils.random_affine(images, **settings)
    torch.manual_seed(3)  # draw the same random numbers, in the same order
    angle = torch.empty(6, 1, 1).uniform_(-15, 15).deg2rad_()
    scale = torch.empty(6, 1, 1).uniform_(0.8, 1.2)
    shift_x, shift_y = torch.empty(2, 6, 1, 1).uniform_(-0.2, 0.2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.cat([torch.cat([cos, -sin, shift_x], 2), torch.cat([sin, cos, shift_y], 2)], 1)
    expected = F.grid_sample(images, F.affine_grid(theta, [6, 1, 28, 28], align_corners=False), align_corners=False)
    assert torch.allclose(augmented, expected, atol=1e-5)
    # Each image got its own transform, and no transform leaves images unchanged.
    identity = utils.random_affine(images, max_rotation=0.0, max_shift=0.0, scale_range=(1.0, 1.0))
    assert torch.allclose(identity, images, atol=1e-5)


def test_loader_settings_follow_the_device():
    assert utils.loader_settings(torch.device("cpu"))["pin_memory"] is False
    assert utils.loader_settings(torch.device("cuda"))["pin_memory"] is True


# --- training and evaluation ---------------------------------------------------------------------


class FixedLogits(nn.Module):
    """Predicts class 0 for every image whose first pixel is positive, else class 1."""

    def forward(self, images):
        positive = (images[:, 0, 0, 0] > 0).float()
        return torch.stack([positive, 1 - positive], dim=1) * 10


def test_test_counts_correct_predictions_and_prints_the_line(capsys):
    images = torch.full((10, 1, 28, 28), -1.0)
    images[:4] = 1.0  # predicted class 0
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 0])  # 3 + 5 correct
    loader = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    loss, accuracy = utils.test(FixedLogits(), torch.device("cpu"), loader)
    assert accuracy == pytest.approx(80.0)
    expected_loss = F.cross_entropy(FixedLogits()(images), labels).item()
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert re.fullmatch(r"Test set: Average loss: \d+\.\d{4}, Accuracy: 8/10 \(80\.00%\)\n", capsys.readouterr().out)


@pytest.mark.parametrize("bfloat16", [False, True], ids=["float32", "bfloat16"])
def test_a_few_steps_lower_the_loss(bfloat16):
    from model import OptimizedNet

    utils.set_seed(0)
    model = OptimizedNet()
    images, labels = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = [(images, labels)] * 10
    mean_losses = [utils.train(model, torch.device("cpu"), loader, optimizer, bfloat16=bfloat16)[0] for _ in range(3)]
    assert mean_losses[2] < 0.6 * mean_losses[0]


def test_schedules():
    model = nn.Linear(2, 2)
    _, onecycle = utils.make_optimizer(model, utils.RECIPE, steps_per_epoch=10)
    assert isinstance(onecycle, torch.optim.lr_scheduler.OneCycleLR)
    optimizer, step = utils.make_optimizer(model, dict(utils.RECIPE, schedule="step", lr=0.01, step_size=2), 10)
    for _ in range(2):
        optimizer.step()
        step.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="Unknown schedule"):
        utils.make_optimizer(model, dict(utils.RECIPE, schedule="cosine"), 10)


def test_train_reports_mean_loss_and_accuracy(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 2, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay put, so the figures are known
    with torch.no_grad():
        output = model(images)
    expected_loss = F.cross_entropy(output, labels).item()
    expected_accuracy = 100 * (output.argmax(1) == labels).float().mean().item()
    loader = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    mean_loss, accuracy = utils.train(model, torch.device("cpu"), loader, optimizer)
    assert mean_loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx(expected_accuracy)
    assert re.search(rf"Train: Loss=\d\.\d{{4}} Batch_id=1 Accuracy={expected_accuracy:.2f}", capsys.readouterr().err)


def test_fit_trains_and_records_history(tiny_mnist, capsys):
    from model import OptimizedNet

    recipe = dict(utils.RECIPE, epochs=2, batch_size=64, test_batch_size=128)
    utils.set_seed(0)
    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    history = utils.fit(OptimizedNet(), torch.device("cpu"), train_loader, test_loader, recipe)
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert set(history[0]) == {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    assert all(0 <= entry["test_acc"] <= 100 and entry["seconds"] > 0 for entry in history)
    output = capsys.readouterr()
    assert output.out.count("Test set: Average loss:") == 2
    assert re.search(r"Train: Loss=\d+\.\d{4} Batch_id=7 Accuracy=\d+\.\d\d", output.err)


def test_same_seed_same_result_on_cpu(tiny_mnist):
    from model import OptimizedNet

    recipe = dict(utils.RECIPE, epochs=1, batch_size=64)

    def run(seed):
        utils.set_seed(seed)
        train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
        model = OptimizedNet()
        history = utils.fit(model, torch.device("cpu"), train_loader, test_loader, recipe)
        return [entry["train_loss"] for entry in history], torch.cat([p.flatten() for p in model.parameters()])

    (losses_a, weights_a), (losses_b, weights_b), (losses_c, weights_c) = run(7), run(7), run(8)
    assert losses_a == losses_b and torch.equal(weights_a, weights_b)
    assert not torch.equal(weights_a, weights_c)


def test_broken_gzip_leaves_no_partial_file(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data", compress=True)
    broken = data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated archive
    with pytest.raises(utils.MNISTNotFoundError, match="Could not unpack"):
        utils.load_mnist_datasets(str(data_dir))
    leftovers = sorted(path.name for path in (data_dir / "MNIST" / "raw").iterdir())
    assert "t10k-images-idx3-ubyte" not in leftovers and not [name for name in leftovers if name.endswith(".partial")]
