"""utils.py: MNIST files and loaders, augmentation, the recipe, the train/test loops, fit.

Each test pins a behaviour with numbers written out, on tiny synthetic data.
"""

import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import utils
from fake_mnist import TEST_SIZE, TRAIN_SIZE, make_mnist_folder, write_idx

CPU = torch.device("cpu")
NO_AUGMENTATION = dict(max_rotation=0.0, max_shift=0.0, scale_range=(1.0, 1.0))


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


def test_a_subset_keeps_the_first_images_of_each_set(tiny_mnist):
    from fake_mnist import synthetic_digits

    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), CPU, dict(utils.RECIPE, **NO_AUGMENTATION), subset=40)
    assert len(train_loader.dataset) == 40 and len(test_loader.dataset) == 40
    images = torch.cat([images for images, _ in test_loader])
    assert torch.equal(as_stored(images), torch.as_tensor(synthetic_digits(TEST_SIZE, 1)[0][:40]).to(torch.uint8))


# --- the data folder, from anywhere ---------------------------------------------------------------


def test_missing_data_from_another_folder_names_it_and_leaves_no_folder(tmp_path, monkeypatch, no_download):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(utils.MNISTNotFoundError) as error:
        utils.load_mnist_datasets("nothing-here")  # relative to the caller's working directory
    assert str(tmp_path / "nothing-here" / "MNIST" / "raw") in str(error.value)
    assert "data_dir" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # torchvision's attempt made folders; they are gone


def test_one_missing_file_is_named(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data")
    (data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(utils.MNISTNotFoundError, match="missing t10k-labels-idx1-ubyte, and") as error:
        utils.load_mnist_datasets(str(data_dir))
    assert "train-images-idx3-ubyte" not in str(error.value).split("downloading")[0]
    assert sorted(path.name for path in (data_dir / "MNIST" / "raw").iterdir())  # the user's files stay


def test_the_corrupt_file_is_named(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data")
    (data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01")
    with pytest.raises(utils.MNISTNotFoundError, match=r"^train-labels-idx1-ubyte in .* could not be read"):
        utils.load_mnist_datasets(str(data_dir))


def test_broken_gzip_leaves_no_partial_file(tmp_path, no_download):
    data_dir = make_mnist_folder(tmp_path / "data", compress=True)
    broken = data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated archive
    with pytest.raises(utils.MNISTNotFoundError, match="Could not unpack"):
        utils.load_mnist_datasets(str(data_dir))
    leftovers = sorted(path.name for path in (data_dir / "MNIST" / "raw").iterdir())
    assert "t10k-images-idx3-ubyte" not in leftovers and not [name for name in leftovers if name.endswith(".partial")]


def test_utils_copied_alone_finds_data_beside_itself_from_another_folder(tmp_path, run_python):
    import shutil

    project, elsewhere = tmp_path / "my-project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    shutil.copy(utils.__file__, project / "utils.py")
    make_mnist_folder(project / "data")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import utils; "
            "train_loader, test_loader = utils.get_data_loaders(); print(len(train_loader.dataset), len(test_loader.dataset))")
    result = run_python("-c", code, project, cwd=elsewhere, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(TRAIN_SIZE), str(TEST_SIZE)]
    assert list(elsewhere.iterdir()) == []  # nothing written where the process ran


# --- what training sees: every image once per epoch, shuffled, augmented as the recipe asks ------
# Each test here fails on a bug that leaves training running with plausible numbers.

def as_stored(images):
    """Normalised batches back to the uint8 pixels of the files (exact for unaugmented images)."""
    return (images[:, 0] * utils.MNIST_STD + utils.MNIST_MEAN).mul(255).round().to(torch.uint8)


def file_order(batches_of_images, stored):
    """The index in `stored` (uint8, N x 28 x 28) of every image the batches hold, in order."""
    index = {image.numpy().tobytes(): i for i, image in enumerate(stored)}
    return [index[image.numpy().tobytes()] for image in as_stored(torch.cat(batches_of_images))]


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_each_epoch_shows_every_training_image_once_in_a_new_order(tiny_mnist, pipeline):
    from fake_mnist import synthetic_digits

    stored_images, stored_labels = (torch.as_tensor(array) for array in synthetic_digits(TRAIN_SIZE, 0))
    recipe = dict(utils.RECIPE, pipeline=pipeline, batch_size=100, **NO_AUGMENTATION)
    train_loader, _ = utils.get_data_loaders(str(tiny_mnist), CPU, recipe)
    orders = []
    for _ in range(2):
        images, labels = zip(*train_loader)
        order = file_order(images, stored_images.to(torch.uint8))
        assert sorted(order) == list(range(TRAIN_SIZE))  # every training image, once
        assert torch.equal(torch.cat(labels), stored_labels[order])  # each with its own label
        orders.append(order)
    assert orders[0] != list(range(TRAIN_SIZE)) and orders[1] != orders[0]  # shuffled, anew each epoch


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_test_batches_are_the_stored_images_in_order_never_augmented(tiny_mnist, pipeline):
    from fake_mnist import synthetic_digits

    stored_images, stored_labels = (torch.as_tensor(array) for array in synthetic_digits(TEST_SIZE, 1))
    recipe = dict(utils.RECIPE, pipeline=pipeline, max_rotation=30.0, max_shift=0.2, scale_range=(0.7, 1.3))
    _, test_loader = utils.get_data_loaders(str(tiny_mnist), CPU, recipe)
    for _ in range(2):
        images, labels = zip(*test_loader)
        assert torch.equal(as_stored(torch.cat(images)), stored_images.to(torch.uint8))
        assert torch.equal(torch.cat(labels), stored_labels)


def bar_mnist(root, count=256):
    """An MNIST folder whose every image is the same horizontal bar, 16 x 2 pixels, at the centre."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.zeros(count, 28, 28, dtype=torch.uint8)
    images[:, 13:15, 6:22] = 255
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", images.numpy())
        write_idx(raw / f"{split}-labels-idx1-ubyte", torch.zeros(count, dtype=torch.uint8).numpy())
    return root


def bar_geometry(images):
    """(angle in degrees, centre x, centre y, length) of the bar in each image, from its moments."""
    ink = (images[:, 0] * utils.MNIST_STD + utils.MNIST_MEAN).clamp(min=0).double()
    y, x = torch.meshgrid(torch.arange(28.0, dtype=torch.float64), torch.arange(28.0, dtype=torch.float64), indexing="ij")
    mass = ink.sum(dim=(1, 2))
    cx, cy = (ink * x).sum(dim=(1, 2)) / mass, (ink * y).sum(dim=(1, 2)) / mass
    dx, dy = x - cx[:, None, None], y - cy[:, None, None]
    mxx, myy, mxy = ((ink * d).sum(dim=(1, 2)) / mass for d in (dx * dx, dy * dy, dx * dy))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * mxy, mxx - myy))
    # Second moment along the bar: length**2 / 12 for a uniform bar.
    along = 0.5 * (mxx + myy) + torch.sqrt(0.25 * (mxx - myy) ** 2 + mxy**2)
    return angle, cx, cy, torch.sqrt(12 * along)


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_augmentation_does_what_the_recipe_asks_and_nothing_else(tmp_path, pipeline):
    data_dir = str(bar_mnist(tmp_path / "bars"))

    def first_batch(**augmentation):
        utils.set_seed(0)
        recipe = dict(utils.RECIPE, pipeline=pipeline, batch_size=256, **augmentation)
        return bar_geometry(next(iter(utils.get_data_loaders(data_dir, CPU, recipe)[0]))[0])

    # The stored bar: flat, centred on (13.5, 13.5), 16 pixels long; unaugmented batches keep it so.
    angle, cx, cy, length = first_batch(**NO_AUGMENTATION)
    assert angle.abs().max() < 1e-6 and (cx - 13.5).abs().max() < 1e-6 and (cy - 13.5).abs().max() < 1e-6
    assert (length - 16).abs().max() < 0.1
    # Rotation up to 30 degrees: every angle within it, and the range used; position and size kept.
    angle, cx, cy, length = first_batch(**dict(NO_AUGMENTATION, max_rotation=30.0))
    assert angle.abs().max() <= 31 and angle.min() < -20 and angle.max() > 20
    assert (cx - 13.5).abs().max() < 0.6 and (length - 16).abs().max() < 1.0
    # Shifts up to 10% of 28 pixels (2.8): every centre within them, and the range used.
    angle, cx, cy, length = first_batch(**dict(NO_AUGMENTATION, max_shift=0.1))
    for centre in (cx, cy):
        assert (centre - 13.5).abs().max() <= 2.8 + 0.51 and (centre - 13.5).abs().max() > 1.8
    assert angle.abs().max() < 1 and (length - 16).abs().max() < 1.1
    # Scale 0.8 to 1.2: the bar's length follows it; it stays flat and centred.
    angle, cx, cy, length = first_batch(**dict(NO_AUGMENTATION, scale_range=(0.8, 1.2)))
    assert length.min() >= 16 * 0.8 - 1 and length.max() <= 16 * 1.2 + 1
    assert length.min() < 16 * 0.88 and length.max() > 16 * 1.12
    assert angle.abs().max() < 1 and (cx - 13.5).abs().max() < 0.6


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


def test_make_optimizer_builds_onecycle_and_steplr_and_refuses_others():
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

    (losses_a, weights_a), (losses_b, weights_b), (_, weights_c) = run(7), run(7), run(8)
    assert losses_a == losses_b and torch.equal(weights_a, weights_b)
    assert not torch.equal(weights_a, weights_c)


# --- the classic API: train(model, device, loader, optimizer, epoch) -------------------------------


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images, labels = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    return model, loader


def test_classic_call_with_a_caller_stepped_steplr(capsys):
    model, loader = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    lrs = []
    for epoch in range(1, 3):
        utils.train(model, torch.device("cpu"), loader, optimizer, epoch)
        lrs.append(optimizer.param_groups[0]["lr"])  # train() left it alone
        scheduler.step()
        utils.test(model, torch.device("cpu"), loader)
    assert lrs == pytest.approx([0.01, 0.001])
    output = capsys.readouterr()
    assert "Epoch 2 Train: Loss=" in output.err and output.out.count("Test set: Average loss:") == 2


def test_a_scheduler_in_the_epoch_slot_is_refused():
    model, loader = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    with pytest.raises(TypeError, match="batch_scheduler"):
        utils.train(model, torch.device("cpu"), loader, optimizer, scheduler)
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_a_batch_scheduler_is_stepped_once_per_batch():
    model, loader = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=8)
    utils.train(model, torch.device("cpu"), loader, optimizer, 1, batch_scheduler=scheduler, verbose=False)
    assert scheduler.last_epoch == 4  # 32 images in batches of 8


def test_one_train_call_changes_every_weight():
    model, loader = tiny_problem()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    utils.train(model, torch.device("cpu"), loader, torch.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))


def test_verbose_false_prints_nothing(tiny_mnist, capsys):
    from model import OptimizedNet

    recipe = dict(utils.RECIPE, epochs=1, batch_size=128)
    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    model = OptimizedNet()
    history = utils.fit(model, torch.device("cpu"), train_loader, test_loader, recipe, verbose=False)
    utils.test(model, torch.device("cpu"), test_loader, verbose=False)
    assert len(history) == 1 and capsys.readouterr() == ("", "")


def test_on_epoch_end_sees_each_completed_epoch(tiny_mnist):
    from model import OptimizedNet

    recipe = dict(utils.RECIPE, epochs=2, batch_size=256)
    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    seen = []
    history = utils.fit(OptimizedNet(), torch.device("cpu"), train_loader, test_loader, recipe, verbose=False, on_epoch_end=seen.append)
    assert seen == history and [entry["epoch"] for entry in seen] == [1, 2]


def test_predict_and_test_agree():
    images = torch.full((10, 1, 28, 28), -1.0)
    images[:4] = 1.0
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
    loader = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    predictions, targets = utils.predict(FixedLogits(), torch.device("cpu"), loader)
    assert predictions.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1] and torch.equal(targets, labels)
    assert utils.test(FixedLogits(), torch.device("cpu"), loader, verbose=False)[1] == pytest.approx(80.0)


# --- modes: evaluation never trains, and leaves the model as it found it -------------------------


class RecordsMode(nn.Module):
    """A linear classifier with BatchNorm and dropout that notes its mode at every forward pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.BatchNorm1d(10), nn.Dropout(0.5))
        self.modes = []

    def forward(self, images):
        self.modes.append(self.training)
        return self.layers(images)


EVALUATIONS = {
    "test": lambda model, loader: utils.test(model, CPU, loader, verbose=False),
    "test with shifts": lambda model, loader: utils.test(model, CPU, loader, verbose=False, shifts=1),
    "predict": lambda model, loader: [tensor.tolist() for tensor in utils.predict(model, CPU, loader)],
    "predict with shifts": lambda model, loader: [tensor.tolist() for tensor in utils.predict(model, CPU, loader, shifts=1)],
}


@pytest.mark.parametrize("evaluation", sorted(EVALUATIONS))
def test_evaluation_runs_in_eval_mode_and_restores_the_mode(evaluation):
    torch.manual_seed(1)
    loader = [(torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))), (torch.randn(3, 1, 28, 28), torch.randint(0, 10, (3,)))]
    figures = []
    for mode in (True, False):
        model = RecordsMode().train(mode)
        figures.append(EVALUATIONS[evaluation](model, loader))
        assert model.modes and not any(model.modes)  # every forward pass in eval mode
        assert model.training is mode  # and the model left as it was
        assert torch.equal(model.layers[2].running_mean, torch.zeros(10))  # BatchNorm learnt nothing
    assert figures[0] == figures[1]  # the same figures whatever the mode before


def test_train_switches_to_training_mode():
    model = RecordsMode().eval()
    loader = [(torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,)))] * 2
    utils.train(model, CPU, loader, torch.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    assert model.modes == [True, True] and model.training


# --- one step per batch, with fresh gradients ------------------------------------------------------


def test_each_batch_takes_one_sgd_step_from_fresh_gradients():
    # A linear classifier reading one pixel, weights 0, label 0, lr 0.1. Step 1: logits (0, 0), so
    # the gradient is (0.5 - 1, 0.5) x 1 and the weights become (0.05, -0.05). Step 2: logits
    # (0.05, -0.05), softmax (0.5249792, 0.4750208), so the weights become (0.0975021, -0.0975021)
    # (with last step's gradient left in: 0.1475021).
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2, bias=False))
    nn.init.zeros_(model[1].weight)
    images = torch.zeros(1, 1, 28, 28)
    images[0, 0, 5, 5] = 1.0
    loader = [(images, torch.tensor([0]))] * 2
    utils.train(model, CPU, loader, torch.optim.SGD(model.parameters(), lr=0.1), verbose=False)
    assert model[1].weight[:, 5 * 28 + 5].tolist() == pytest.approx([0.0975021, -0.0975021], abs=1e-6)
    assert model[1].weight.abs().sum().item() == pytest.approx(2 * 0.0975021, abs=1e-6)  # no other weight moved


# --- the figures of an epoch are means over images, not over batches -------------------------------


class ReadsFirstPixel(nn.Module):
    """Logits (x, 0), x the image's first pixel: the loss for label 0 is log(1 + e^-x)."""

    def forward(self, images):
        first = images[:, 0, 0, 0]
        return torch.stack([first, torch.zeros_like(first)], dim=1) + 0 * self.dummy

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))


def uneven_batches():
    # Pixels 1, 1, -1 in a batch of three, then 3 alone; all labelled 0. Losses: 0.3132617 (twice),
    # 1.3132617 and 0.0485874; correct: the three positive pixels.
    first = torch.tensor([1.0, 1.0, -1.0, 3.0])
    images = first.view(4, 1, 1, 1).expand(4, 1, 28, 28).contiguous()
    labels = torch.zeros(4, dtype=torch.long)
    return [(images[:3], labels[:3]), (images[3:], labels[3:])]


def test_train_reports_means_over_images_when_the_last_batch_is_smaller():
    model = ReadsFirstPixel()
    loss, accuracy = utils.train(model, CPU, uneven_batches(), torch.optim.SGD(model.parameters(), lr=0.0), verbose=False)
    # Over images: (2 x 0.3132617 + 1.3132617 + 0.0485874) / 4 and 3/4; over batches it would be
    # 0.3475912 and 83.33%.
    assert loss == pytest.approx(0.4970931, abs=1e-6) and accuracy == pytest.approx(75.0)


def test_test_reports_means_over_images_when_the_last_batch_is_smaller():
    loss, accuracy = utils.test(ReadsFirstPixel(), CPU, uneven_batches(), verbose=False)
    assert loss == pytest.approx(0.4970931, abs=1e-6) and accuracy == pytest.approx(75.0)


# --- label smoothing, EMA of weights, test-time augmentation ---------------------------------------


def fixed_bias_model():
    """Logits (5, 0, ..., 0) for every image, whatever it shows."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([5.0] + [0.0] * 9))
    return model


@pytest.mark.parametrize("label_smoothing, expected_loss", [(0.0, 0.05887), (0.1, 0.50887)])
def test_label_smoothing_reaches_the_loss(label_smoothing, expected_loss):
    # -log p0 = log(e^5 + 9) - 5 = 0.05887 and -log pk = log(e^5 + 9) = 5.05887: 0.9 x 0.05887 +
    # 0.1 x (0.05887 + 9 x 5.05887) / 10 = 0.50887 with smoothing 0.1.
    model = fixed_bias_model()
    loader = [(torch.randn(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    mean_loss, _ = utils.train(model, torch.device("cpu"), loader, optimizer, label_smoothing=label_smoothing, verbose=False)
    assert mean_loss == pytest.approx(expected_loss, abs=1e-4)


def test_ema_is_updated_after_every_step():
    model, loader = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.5))

    class RecordWeights:  # stepped after each batch, after the EMA update
        weights = []

        def step(self):
            self.weights.append(model[1].weight.detach().clone())

    recorder = RecordWeights()
    utils.train(model, torch.device("cpu"), loader, optimizer, batch_scheduler=recorder, ema=ema, verbose=False)
    w1, w2, w3, w4 = recorder.weights  # 4 batches; the first update copies, then halves towards each new step
    assert torch.allclose(ema.module[1].weight, 0.125 * w1 + 0.125 * w2 + 0.25 * w3 + 0.5 * w4, atol=1e-6)


def test_fit_with_ema_keeps_the_weights_it_tested(tiny_mnist):
    from model import Net4k

    recipe = dict(utils.RECIPE, epochs=1, batch_size=64, ema_decay=0.9)
    utils.set_seed(0)
    train_loader, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    model = Net4k()
    history = utils.fit(model, torch.device("cpu"), train_loader, test_loader, recipe, verbose=False)
    assert utils.test(model, torch.device("cpu"), test_loader, verbose=False)[0] == pytest.approx(history[-1]["test_loss"], rel=1e-6)


class LooksAtOnePixel(nn.Module):
    """Class 1 when pixel (10, 10) is bright, else class 0."""

    def forward(self, images):
        bright = images[:, 0, 10, 10] * 10
        return torch.stack([torch.zeros_like(bright), bright], dim=1)


def test_test_time_augmentation_averages_the_image_and_its_four_shifts(capsys):
    images = torch.full((2, 1, 28, 28), -1.0)
    images[0, 0, 10, 10] = 1.0  # seen by the plain pass only: class 1 once in five views
    images[1, 0, 10, 11] = 1.0  # seen only when shifted left: class 1 once in five views
    labels = torch.tensor([0, 0])
    loader = [(images, labels)]
    device = torch.device("cpu")
    assert utils.predict(LooksAtOnePixel(), device, loader)[0].tolist() == [1, 0]
    assert utils.predict(LooksAtOnePixel(), device, loader, shifts=1)[0].tolist() == [0, 0]
    # Each image: mean p(class 0) = (4 x 0.9999546 + 0.0000454) / 5 = 0.8000, so the loss is -log 0.8.
    loss, accuracy = utils.test(LooksAtOnePixel(), device, loader, shifts=1)
    assert loss == pytest.approx(0.22314, abs=1e-4) and accuracy == 100.0
    assert capsys.readouterr().out.strip().endswith("Accuracy: 2/2 (100.00%), each image averaged with its 4 shifts by 1 pixel")


# --- schedules: the learning rate at every step, written out ---------------------------------------


class RecordsLearningRate:
    """A loader over fixed batches that notes the optimizer's learning rate as each batch is taken."""

    def __init__(self, batches):
        self.batches, self.optimizer, self.rates = batches, None, []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.rates.append(round(self.optimizer.param_groups[0]["lr"], 7))
            yield batch


def four_batches():
    torch.manual_seed(0)
    return [(torch.randn(2, 1, 28, 28), torch.randint(0, 10, (2,))) for _ in range(4)]


# OneCycle, 2 epochs of 4 steps, peak 0.2, warm-up over the first 25% of the steps: from 0.2 / 10
# up to 0.2 by step 2, then linearly down to 0.2 / 10 / 100 at step 8.
ONECYCLE = dict(schedule="onecycle", lr=0.2, warmup_fraction=0.25, epochs=2)
ONECYCLE_RATES = [0.02, 0.2, 0.1667, 0.1334, 0.1001, 0.0668, 0.0335, 0.0002]
# StepLR, 3 epochs of 4 steps, starting at 0.1, divided by 10 after every epoch.
STEP = dict(schedule="step", lr=0.1, step_size=1, epochs=3)
STEP_RATES = [0.1] * 4 + [0.01] * 4 + [0.001] * 4


@pytest.mark.parametrize("schedule, rates", [(ONECYCLE, ONECYCLE_RATES), (STEP, STEP_RATES)], ids=["onecycle", "step"])
def test_fit_follows_the_schedule_at_every_step(monkeypatch, schedule, rates):
    loader = RecordsLearningRate(four_batches())
    make_optimizer = utils.make_optimizer

    def noting_the_optimizer(*args, **kwargs):
        optimizer, scheduler = make_optimizer(*args, **kwargs)
        loader.optimizer = optimizer
        return optimizer, scheduler

    monkeypatch.setattr(utils, "make_optimizer", noting_the_optimizer)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    history = utils.fit(model, CPU, loader, four_batches(), dict(utils.RECIPE, **schedule), verbose=False)
    assert loader.rates == pytest.approx(rates, abs=1e-7)
    assert [entry["lr"] for entry in history] == pytest.approx(rates[::4], abs=1e-7)  # each epoch's first


@pytest.mark.parametrize("schedule, rates", [(ONECYCLE, ONECYCLE_RATES), (STEP, STEP_RATES)], ids=["onecycle", "step"])
def test_the_classic_loop_follows_the_schedule_at_every_step(schedule, rates):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    loader = RecordsLearningRate(four_batches())
    loader.optimizer, scheduler = utils.make_optimizer(model, dict(utils.RECIPE, **schedule), steps_per_epoch=4)
    per_batch = schedule["schedule"] == "onecycle"
    for epoch in range(1, schedule["epochs"] + 1):
        utils.train(model, CPU, loader, loader.optimizer, epoch, batch_scheduler=scheduler if per_batch else None, verbose=False)
        if not per_batch:
            scheduler.step()
    assert loader.rates == pytest.approx(rates, abs=1e-7)


def test_batchnorm_biases_learn_at_the_recipes_factor_with_their_decay_divided():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    recipe = dict(utils.RECIPE, schedule="step", lr=0.1, weight_decay=1e-3, bn_bias_lr_factor=10.0)
    optimizer, _ = utils.make_optimizer(model, recipe, steps_per_epoch=1)
    groups = {tuple(id(p) for p in group["params"]): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups}
    assert groups == {
        (id(model[0].weight), id(model[0].bias), id(model[1].weight)): pytest.approx((0.1, 1e-3)),
        (id(model[1].bias),): pytest.approx((1.0, 1e-4)),
    }


# --- the recipe, the constants and the device -------------------------------------------------


def test_recipe_is_read_only_but_copies_change():
    with pytest.raises(TypeError):
        utils.RECIPE["epochs"] = 2
    changed = dict(utils.RECIPE, epochs=2)
    assert changed["epochs"] == 2 and utils.RECIPE["epochs"] != 2 and changed["lr"] == utils.RECIPE["lr"]


def test_normalisation_uses_mnists_mean_and_std():
    # (0 - 0.1307) / 0.3081 and (1 - 0.1307) / 0.3081, written out.
    images = torch.tensor([[0, 255]], dtype=torch.uint8).expand(28, 2).repeat(1, 14).view(1, 28, 28)
    batch, _ = next(iter(utils.TensorLoader(images, torch.tensor([3]), batch_size=1)))
    assert batch.min().item() == pytest.approx(-0.424213, abs=1e-5)
    assert batch.max().item() == pytest.approx(2.821487, abs=1e-5)


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core", "AVX512_CORE_VNNI"])
def test_bfloat16_is_not_chosen_when_onednn_is_capped_below_it(monkeypatch, cap):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert utils.bfloat16_is_fast(torch.device("cpu")) is False
    assert utils.precision(torch.device("cpu")) == "float32"


# --- every key of the recipe reaches the code it names ---------------------------------------------


class TinyNet(nn.Module):
    """A convolution with BatchNorm and dropout, pooled: enough for each recipe key to matter."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout2d(0.1),
                                    nn.Conv2d(4, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
        self.dtypes = []

    def forward(self, images):
        output = self.layers(images)
        self.dtypes.append(output.dtype)
        return output


SHORT_RUN = dict(epochs=2, batch_size=128, test_batch_size=100)


def run_recipe(data_dir, monkeypatch, **changes):
    """What a short fit with the recipe (and bfloat16 forced to be fast) did, in observable terms."""
    monkeypatch.setattr(utils, "bfloat16_is_fast", lambda device: True)
    recipe = dict(utils.RECIPE, **dict(SHORT_RUN, **changes))
    utils.set_seed(0)
    train_loader, test_loader = utils.get_data_loaders(data_dir, CPU, recipe)
    first_images = next(iter(train_loader))[0]
    utils.set_seed(0)
    model = TinyNet()
    rates = []
    original_step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (rates.append(self.param_groups[0]["lr"]), original_step(self, *a, **k))[1])
    history = utils.fit(model, CPU, train_loader, test_loader, recipe, verbose=False)
    monkeypatch.setattr(torch.optim.SGD, "step", original_step)
    return dict(
        loaders=(type(train_loader).__name__, len(train_loader), len(test_loader)),
        images=first_images,
        epochs=len(history),
        rates=rates,
        train_loss=[entry["train_loss"] for entry in history],
        test_loss=[entry["test_loss"] for entry in history],
        weights=torch.cat([p.detach().flatten() for p in model.parameters()]),
        layout=model.layers[4].weight.is_contiguous(memory_format=torch.channels_last),
        precision=set(model.dtypes),
    )


# key -> (another value, what must change when the recipe holds it)
RECIPE_CHANGES = {
    "epochs": (3, "epochs"),
    "batch_size": (64, "loaders"),
    "test_batch_size": (50, "loaders"),
    "schedule": ("step", "rates"),
    "lr": (0.05, "rates"),
    "warmup_fraction": (0.5, "rates"),
    "step_size": (1, "rates"),  # with schedule="step", below
    "momentum": (0.5, "weights"),
    "nesterov": (False, "weights"),
    "weight_decay": (0.05, "weights"),
    "bn_bias_lr_factor": (10.0, "weights"),
    "label_smoothing": (0.2, "train_loss"),
    "ema_decay": (0.5, "weights"),
    "test_shifts": (1, "test_loss"),
    "channels_last": (False, "layout"),
    "bfloat16": (False, "precision"),
    "max_rotation": (25.0, "images"),
    "max_shift": (0.2, "images"),
    "scale_range": ((0.8, 1.25), "images"),
    "pipeline": ("torchvision", "loaders"),
}


def test_every_recipe_key_is_checked_below():
    assert set(RECIPE_CHANGES) == set(utils.RECIPE)


@pytest.mark.parametrize("key", sorted(RECIPE_CHANGES))
def test_each_recipe_key_changes_what_happens(tiny_mnist, monkeypatch, key):
    value, observable = RECIPE_CHANGES[key]
    base = dict(schedule="step", step_size=2) if key == "step_size" else {}
    assert value != dict(utils.RECIPE, **SHORT_RUN, **base)[key]
    before = run_recipe(str(tiny_mnist), monkeypatch, **base)[observable]
    after = run_recipe(str(tiny_mnist), monkeypatch, **dict(base, **{key: value}))[observable]
    if isinstance(before, torch.Tensor):
        assert before.shape != after.shape or not torch.allclose(before, after)
    else:
        assert before != after


def test_precision_is_what_the_recipe_and_the_hardware_allow(tiny_mnist, monkeypatch):
    assert run_recipe(str(tiny_mnist), monkeypatch)["precision"] == {torch.bfloat16, torch.float32}  # autocast training, float32 tests
    assert run_recipe(str(tiny_mnist), monkeypatch, bfloat16=False)["precision"] == {torch.float32}
    monkeypatch.setattr(utils, "bfloat16_is_fast", lambda device: False)
    assert utils.precision(CPU, utils.RECIPE) == "float32"


# --- the bfloat16 decision, from the hardware's side ----------------------------------------------


@pytest.mark.parametrize(
    "capabilities, cap, expected",
    [
        ({"avx512_bf16": True}, None, True),
        ({"amx_bf16": True}, None, True),
        ({"avx512_bf16": False, "avx2": True}, None, False),
        ({}, None, False),
        ({"avx512_bf16": True}, "AVX2", False),
        ({"avx512_bf16": True}, "AVX512_CORE", False),
        ({"avx512_bf16": True}, "AVX512_CORE_BF16", True),
    ],
)
def test_bfloat16_is_chosen_only_where_the_cpu_computes_it(monkeypatch, capabilities, cap, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert utils.bfloat16_is_fast(CPU) is expected
    assert utils.precision(CPU, utils.RECIPE) == ("bfloat16" if expected else "float32")


def test_bfloat16_is_not_chosen_when_torch_cannot_tell(monkeypatch):
    # Without torch.cpu.get_capabilities (torch 2.1 to at least 2.8), the CPU's bfloat16 support is unknown: float32.
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    assert utils.bfloat16_is_fast(CPU) is False
    assert utils.precision(CPU) == "float32"
