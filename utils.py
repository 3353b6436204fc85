"""What a training notebook imports: the recipe, seeding, device and precision, MNIST data and its
augmentation, the optimizer and schedule, and the loops `train`, `test`, `predict` and `fit`.

It works when copied on its own next to a notebook: it needs torch, torchvision and tqdm, and no
other file of this project. The models are in model.py, the notebook's figures in plots.py, and
reading photos of your own digits in digits.py.
"""

import contextlib
import gzip
import io
import os
import platform
import random
import shutil
import sys
import time
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import datasets, transforms
from tqdm import tqdm

# Mean and standard deviation of the 60,000 MNIST training pixels scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# The data folder when none is given: `data/` beside this file, whatever the working directory,
# so a notebook in another folder finds the same copy. MNIST is read from DATA_DIR/MNIST/raw/.
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# The project's training recipe: every hyperparameter in one place. train.py, the notebook and
# bench/ all start from it. It is read-only, so that one notebook cell cannot change the defaults
# of every later call; make a changed copy instead: dict(utils.RECIPE, epochs=2). Its values were
# chosen on a held-out part of the training set, never on the test set (bench/README.md).
RECIPE = MappingProxyType(
    dict(
        epochs=6,  # with the light augmentation below, as accurate as 8 epochs of the heavier one
        batch_size=256,
        test_batch_size=1000,
        schedule="onecycle",  # "onecycle": stepped every batch; "step": StepLR, stepped every epoch
        lr=0.2,  # OneCycle's peak learning rate (StepLR's starting one)
        warmup_fraction=0.2,  # OneCycle: share of the steps spent raising the learning rate to its peak
        step_size=6,  # StepLR: epochs between the learning rate's drops by 10x
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        bn_bias_lr_factor=1.0,  # BatchNorm's biases learn at this many times the learning rate (weight decay divided by it)
        label_smoothing=0.0,  # share of each target spread over the other classes (F.cross_entropy)
        ema_decay=0.0,  # > 0: test and keep an exponential moving average of the weights, updated every batch
        test_shifts=0,  # > 0: test-time augmentation, averaging each test image and its 4 shifts by this many pixels
        channels_last=True,  # memory layout of the model's weights and activations: faster convolutions
        bfloat16=True,  # train under bfloat16 autocast where the hardware computes it fast (bfloat16_is_fast)
        max_rotation=5.0,  # degrees, training augmentation only
        max_shift=0.05,  # fraction of the image size
        scale_range=(0.95, 1.05),
        pipeline="tensor",  # "tensor": data held as tensors, augmented per batch; "torchvision": DataLoader
    )
)


class MNISTNotFoundError(RuntimeError):
    """MNIST could be neither read from the data folder nor downloaded; the message says why."""


# ----------------------------------------------------------------------------------------------
# Seeding and device
# ----------------------------------------------------------------------------------------------


def set_seed(seed):
    """Seed Python, NumPy and torch (CPU and all GPUs) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device():
    """The fastest device present: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) below the first one with bfloat16 dot products.
_ISA_WITHOUT_BFLOAT16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def bfloat16_is_fast(device):
    """Whether bfloat16 autocast speeds up training on `device`.

    True on CUDA GPUs with bfloat16 support and on CPUs whose bfloat16 instructions (AVX512-BF16,
    AMX) oneDNN may use: not when ONEDNN_MAX_CPU_ISA caps it below them. Elsewhere bfloat16 is
    emulated and several times slower than float32 (bench/results/tricks.txt, as the CPU is, against
    tricks-avx2.txt, under ONEDNN_MAX_CPU_ISA=AVX2).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu" and hasattr(torch.cpu, "get_capabilities"):
        if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in _ISA_WITHOUT_BFLOAT16:
            return False
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    return False


def precision(device, recipe=RECIPE):
    """"bfloat16" or "float32": what `fit` trains in with this recipe on this device."""
    return "bfloat16" if recipe["bfloat16"] and bfloat16_is_fast(device) else "float32"


def loader_settings(device):
    """DataLoader keyword arguments that suit the device and the place the code runs in.

    Pinned memory only speeds up copies to a CUDA device. Worker processes are started with
    `spawn` on macOS and Windows, which cannot re-import objects defined in a notebook and is slow
    to start there, so inside Jupyter on those systems the data is loaded in the main process.
    """
    in_notebook = "ipykernel" in sys.modules
    spawns_workers = platform.system() in ("Darwin", "Windows")
    num_workers = 0 if (in_notebook and spawns_workers) else min(2, os.cpu_count() or 1)
    # No persistent_workers: those processes would outlive the training loop until the garbage
    # collector frees the loader, and slow down whatever runs next on a 2-core machine.
    return dict(num_workers=num_workers, pin_memory=device.type == "cuda")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _unpack_gzipped_files(raw_folder):
    """Decompress `NAME.gz` into `NAME` in `raw_folder` for each MNIST file that is not there raw.

    torchvision reads only the uncompressed files, and rejects gzip archives whose bytes differ
    from the ones it downloads itself (their gzip headers differ even when the content is the
    same), so any `.gz` copy is unpacked first. Each file is written under a temporary name and
    renamed at the end: an interrupted run leaves no half-written file that looks complete.
    """
    for name in MNIST_FILES:
        target = os.path.join(raw_folder, name)
        if os.path.exists(target):
            continue
        source = target + ".gz"
        if os.path.isfile(source):
            partial = target + ".partial"
            try:
                with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(partial, target)
            except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
                raise MNISTNotFoundError(f"Could not unpack {source}: {error}. Replace it with the original file.") from None
            finally:
                if os.path.exists(partial):  # the archive was broken: leave nothing behind
                    os.remove(partial)


def _download(data_dir, raw_folder):
    """Let torchvision download MNIST into raw_folder; on failure remove the folders it made."""
    made = [folder for folder in (data_dir, os.path.dirname(raw_folder), raw_folder) if not os.path.exists(folder)]
    # torchvision prints each failed mirror; the one error raised below says it all.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            datasets.MNIST(data_dir, train=True, download=True)
            return None
        except Exception as error:  # network errors come in many types; all mean the same here
            for folder in reversed(made):
                with contextlib.suppress(OSError):  # only empty folders go: never someone's files
                    os.rmdir(folder)
            # torchvision lists every mirror it tried; the last line holds the final cause.
            return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


def _unreadable_file(raw_folder):
    """(name, reason) of the first MNIST file torchvision cannot parse, or None."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name in MNIST_FILES:
        read = read_image_file if "images" in name else read_label_file
        try:
            read(os.path.join(raw_folder, name))
        except Exception as error:  # torchvision raises assorted errors on truncated or foreign files
            return name, str(error) or type(error).__name__
    return None


def load_mnist_datasets(data_dir=None, train_transform=None, test_transform=None):
    """The MNIST training and test sets as `torchvision.datasets.MNIST` objects.

    Reads the four files from `data_dir/MNIST/raw/` (default: DEFAULT_DATA_DIR, the `data/`
    folder beside this file), raw or gzipped, so an offline copy of the original files is enough.
    Otherwise downloads them there. When neither works, raises MNISTNotFoundError naming the
    folder and the files that are missing or unreadable, and leaves no empty folder behind.
    """
    data_dir = os.path.abspath(os.path.expanduser(data_dir if data_dir is not None else DEFAULT_DATA_DIR))
    raw_folder = os.path.join(data_dir, "MNIST", "raw")
    if os.path.isdir(raw_folder):
        _unpack_gzipped_files(raw_folder)

    missing = [name for name in MNIST_FILES if not os.path.isfile(os.path.join(raw_folder, name))]
    if missing:
        reason = _download(data_dir, raw_folder)
        if reason is not None:
            raise MNISTNotFoundError(
                f"MNIST not found in {raw_folder}: missing {', '.join(missing)}, and downloading failed ({reason}). "
                "Put the original files there, raw or gzipped (.gz), or pass a data_dir "
                "(train.py: --data-dir) whose MNIST/raw/ holds them."
            )

    try:
        train_set = datasets.MNIST(data_dir, train=True, transform=train_transform)
        test_set = datasets.MNIST(data_dir, train=False, transform=test_transform)
    except Exception as error:  # torchvision raises assorted errors on truncated or foreign files
        name, reason = _unreadable_file(raw_folder) or ("one of the files", str(error))
        raise MNISTNotFoundError(
            f"{name} in {raw_folder} could not be read ({reason}). Replace it with the original file."
        ) from None
    for dataset, images, labels in ((train_set, MNIST_FILES[0], MNIST_FILES[1]), (test_set, MNIST_FILES[2], MNIST_FILES[3])):
        if dataset.data.shape[1:] != (28, 28) or len(dataset.data) != len(dataset.targets):
            raise MNISTNotFoundError(
                f"{images} and {labels} in {raw_folder} hold {tuple(dataset.data.shape)} images and "
                f"{len(dataset.targets)} labels; expected 28 x 28 images, one label each."
            )
    return train_set, test_set


def random_affine(images, max_rotation, max_shift, scale_range):
    """Rotate, shift and scale each image in a batch by its own random amount.

    images: float tensor (N, 1, H, W) with background 0, on any device. Each output pixel reads
    the input at its own coordinates rotated, scaled and shifted (one `grid_sample` call for the
    whole batch). The sampling grid is the one `F.affine_grid` builds, written out with
    broadcasting, since affine_grid's batched matmul took most of the time on a CPU; its x and y
    are written straight into their places, since torch.stack along the last dimension took
    twice as long as computing them.
    """
    n, _, height, width = images.shape
    device = images.device
    angle = torch.empty(n, 1, 1, device=device).uniform_(-max_rotation, max_rotation).deg2rad_()
    scale = torch.empty(n, 1, 1, device=device).uniform_(*scale_range)
    shift_x, shift_y = torch.empty(2, n, 1, 1, device=device).uniform_(-2 * max_shift, 2 * max_shift)  # grid spans [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # Pixel centres in grid_sample's coordinates, -1 to 1 (align_corners=False).
    x = ((torch.arange(width, device=device) * 2 + 1) / width - 1).view(1, 1, width)
    y = ((torch.arange(height, device=device) * 2 + 1) / height - 1).view(1, height, 1)
    grid = torch.empty(n, height, width, 2, device=device)
    grid[..., 0] = cos * x - sin * y + shift_x
    grid[..., 1] = sin * x + cos * y + shift_y
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class TensorLoader:
    """Batches of a dataset held as one uint8 tensor, on the device, with no worker processes.

    Each batch is converted to float, augmented per sample (training only) and normalised where it
    lies, with no per-image Python work.
    Iterates like a DataLoader: `for images, labels in loader`, `len(loader)` batches.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, augment=None):
        self.images = images  # (N, 28, 28) uint8
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment  # dict of random_affine's arguments, or None
        self.dataset = labels  # len(loader.dataset) is the number of samples, as with a DataLoader

    def __len__(self):
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, device=self.images.device) if self.shuffle else torch.arange(n, device=self.images.device)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index].unsqueeze(1).float().div_(255)
            if self.augment:
                images = random_affine(images, **self.augment)
            yield images.sub_(MNIST_MEAN).div_(MNIST_STD), self.labels[index]


def get_data_loaders(data_dir=None, device=torch.device("cpu"), recipe=RECIPE, subset=None):
    """Training and test loaders for MNIST: the one data function the project uses.

    recipe["pipeline"] picks how batches are made:
      "tensor" (default): the dataset as tensors on `device`, augmented per batch (TensorLoader);
      "torchvision": the conventional pipeline, per-image PIL transforms through a DataLoader.
    Both give normalised float batches (N, 1, 28, 28) and the same kind of augmentation.
    data_dir: where MNIST/raw/ is (default DEFAULT_DATA_DIR); see load_mnist_datasets.
    subset: use only the first `subset` training and test images (for quick smoke runs).
    """
    augment = dict(max_rotation=recipe["max_rotation"], max_shift=recipe["max_shift"], scale_range=recipe["scale_range"])
    if recipe["pipeline"] == "tensor":
        train_set, test_set = load_mnist_datasets(data_dir)
        sets = [(train_set.data, train_set.targets), (test_set.data, test_set.targets)]
        if subset:
            sets = [(images[:subset], labels[:subset]) for images, labels in sets]
        (train_images, train_labels), (test_images, test_labels) = [(i.to(device), l.to(device)) for i, l in sets]
        train_loader = TensorLoader(train_images, train_labels, recipe["batch_size"], shuffle=True, augment=augment)
        test_loader = TensorLoader(test_images, test_labels, recipe["test_batch_size"])
        return train_loader, test_loader

    if recipe["pipeline"] == "torchvision":
        normalize = transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))
        train_transform = transforms.Compose(
            [
                transforms.RandomAffine(
                    augment["max_rotation"], translate=(augment["max_shift"],) * 2, scale=augment["scale_range"], fill=0
                ),
                transforms.ToTensor(),
                normalize,
            ]
        )
        test_transform = transforms.Compose([transforms.ToTensor(), normalize])
        train_set, test_set = load_mnist_datasets(data_dir, train_transform, test_transform)
        if subset:
            train_set = torch.utils.data.Subset(train_set, range(subset))
            test_set = torch.utils.data.Subset(test_set, range(subset))
        settings = loader_settings(device)
        train_loader = torch.utils.data.DataLoader(train_set, recipe["batch_size"], shuffle=True, **settings)
        test_loader = torch.utils.data.DataLoader(test_set, recipe["test_batch_size"], **settings)
        return train_loader, test_loader

    raise ValueError(f"Unknown pipeline {recipe['pipeline']!r}: use 'tensor' or 'torchvision'.")


# ----------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------


def make_optimizer(model, recipe, steps_per_epoch):
    """SGD with (Nesterov) momentum and the recipe's learning-rate schedule.

    Returns (optimizer, scheduler). A "onecycle" scheduler is meant to be stepped after every
    batch (pass it to `train` as batch_scheduler); a "step" one once per epoch, by the caller.
    """
    # BatchNorm's biases shift whole feature maps; small models learn faster when they move
    # quicker than the weights. Their weight decay is divided by the same factor, so that the
    # decay per step (learning rate x weight decay) stays what it is for every parameter.
    factor = recipe["bn_bias_lr_factor"]
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.bias is not None}
    groups = [dict(params=[p for p in model.parameters() if factor == 1 or id(p) not in bn_biases], lr=recipe["lr"])]
    if factor != 1:
        groups.append(dict(params=[p for p in model.parameters() if id(p) in bn_biases], lr=recipe["lr"] * factor,
                           weight_decay=recipe["weight_decay"] / factor))
    optimizer = torch.optim.SGD(
        groups,
        lr=recipe["lr"],
        momentum=recipe["momentum"],
        nesterov=recipe["nesterov"],
        weight_decay=recipe["weight_decay"],
    )
    if recipe["schedule"] == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in groups],
            epochs=recipe["epochs"],
            steps_per_epoch=steps_per_epoch,
            pct_start=recipe["warmup_fraction"],
            anneal_strategy="linear",
            div_factor=10,
            final_div_factor=100,
            cycle_momentum=False,  # OneCycleLR would otherwise replace the recipe's momentum with its own 0.85-0.95 cycle
        )
    elif recipe["schedule"] == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe["step_size"], gamma=0.1)
    else:
        raise ValueError(f"Unknown schedule {recipe['schedule']!r}: use 'onecycle' or 'step'.")
    return optimizer, scheduler


def train(model, device, train_loader, optimizer, epoch=None, *, batch_scheduler=None, bfloat16=False,
          label_smoothing=0.0, ema=None, verbose=True):
    """One epoch of training. Returns (mean loss, accuracy in percent) over the epoch's batches.

    The call of pytorch/examples works with any DataLoader: train(model, device, train_loader,
    optimizer, epoch). The learning rate is left alone unless you ask: a scheduler given as
    `batch_scheduler` is stepped after every batch (OneCycleLR); step a per-epoch one (StepLR)
    yourself after this returns. The model returns logits.
    epoch: shown in the progress bar. bfloat16: run the forward pass under bfloat16 autocast (the
    weights stay float32). label_smoothing: passed to F.cross_entropy. ema: an AveragedModel
    updated after every optimizer step. verbose: show the progress bar `Train: Loss=… Batch_id=… Accuracy=…`.
    """
    if epoch is not None and not isinstance(epoch, int):
        raise TypeError(
            f"train()'s fifth argument is the epoch number, got {type(epoch).__name__}; "
            "pass a scheduler to step after every batch as batch_scheduler=..."
        )
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    processed = 0
    prefix = "" if epoch is None else f"Epoch {epoch} "
    # Fewer refreshes keep a saved notebook's log short.
    progress = tqdm(train_loader, mininterval=0.5, disable=not verbose, desc=prefix + "Train")
    for batch_id, (images, labels) in enumerate(progress):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            output = model(images)
            loss = F.cross_entropy(output, labels, label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if batch_scheduler is not None:
            batch_scheduler.step()

        loss_sum += loss.detach() * len(labels)
        correct += (output.argmax(dim=1) == labels).sum()
        processed += len(labels)
        # Reading values back from a GPU waits for it, so the bar is refreshed every few batches.
        if verbose and (batch_id % 20 == 0 or batch_id == len(train_loader) - 1):
            progress.set_description(
                f"{prefix}Train: Loss={loss.item():.4f} Batch_id={batch_id} Accuracy={100 * correct.item() / processed:.2f}",
                refresh=False,
            )
    return loss_sum.item() / processed, 100 * correct.item() / processed


@torch.inference_mode()
def _evaluate(model, device, loader, shifts=0):
    """The one pass over a dataset: (summed cross-entropy, predicted labels, true labels) on the CPU.

    Runs the model in eval mode and leaves it in the mode it was in, so that testing in the middle
    of training changes nothing, and a model in training mode gives the same figures as in eval.

    shifts > 0: test-time augmentation. Each image is also classified moved by `shifts` pixels
    up, down, left and right, and the five softmax outputs are averaged. torch.roll wraps pixels
    round the edge, where MNIST has only background.
    """
    was_training = model.training
    model.eval()  # BatchNorm with its running statistics, no dropout; put back as it was at the end
    loss_sum, predictions, targets = 0.0, [], []
    try:
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            output = model(images)
            if shifts:
                probabilities = output.softmax(dim=1)
                for shift in (shifts, -shifts):
                    for dim in (2, 3):
                        probabilities += model(torch.roll(images, shift, dims=dim)).softmax(dim=1)
                output = (probabilities / 5).log()  # log-probabilities: cross_entropy and argmax take them as logits
            loss_sum += F.cross_entropy(output, labels, reduction="sum").item()
            predictions.append(output.argmax(dim=1).cpu())
            targets.append(labels.cpu())
    finally:
        model.train(was_training)
    return loss_sum, torch.cat(predictions), torch.cat(targets)


def predict(model, device, loader, shifts=0):
    """Predicted and true labels for every sample of `loader`, as CPU tensors (shifts: as in test)."""
    _, predictions, targets = _evaluate(model, device, loader, shifts)
    return predictions, targets


def test(model, device, test_loader, verbose=True, shifts=0):
    """Evaluate on the whole test set; returns (average loss, accuracy in percent).

    verbose: print `Test set: Average loss: …, Accuracy: correct/total (…%)`. shifts > 0: average
    the predictions over each image and its four shifts by that many pixels (recipe["test_shifts"]).
    """
    loss_sum, predictions, targets = _evaluate(model, device, test_loader, shifts)
    correct, total = (predictions == targets).sum().item(), len(targets)
    test_loss, test_accuracy = loss_sum / total, 100 * correct / total
    if verbose:
        augmented = f", each image averaged with its 4 shifts by {shifts} pixel{'s' if shifts > 1 else ''}" if shifts else ""
        print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{total} ({test_accuracy:.2f}%){augmented}")
    return test_loss, test_accuracy


def fit(model, device, train_loader, test_loader, recipe=RECIPE, verbose=True, on_epoch_end=None):
    """Train for recipe["epochs"] epochs, testing after each. Returns the per-epoch history.

    Moves the model to `device` (in channels-last layout if the recipe says so) and trains in
    `precision(device, recipe)`. Each history entry: epoch, lr (at the epoch's start),
    train_loss, train_acc, test_loss, test_acc (percent) and seconds (that epoch's wall time,
    training plus test). on_epoch_end(entry), if given, is called after each completed epoch:
    the place to keep a checkpoint, so that an interrupted run loses only the epoch under way.
    """
    layout = torch.channels_last if recipe["channels_last"] else torch.contiguous_format
    model.to(device, memory_format=layout)
    optimizer, scheduler = make_optimizer(model, recipe, len(train_loader))
    per_batch = recipe["schedule"] == "onecycle"
    bfloat16 = precision(device, recipe) == "bfloat16"
    ema = None
    if recipe["ema_decay"]:
        # The average includes BatchNorm's running statistics (use_buffers), so it can be tested as is.
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe["ema_decay"]), use_buffers=True)
    history = []
    for epoch in range(1, recipe["epochs"] + 1):
        lr = optimizer.param_groups[0]["lr"]
        if verbose:
            print(f"Epoch {epoch}/{recipe['epochs']}  lr={lr:.5f}")
        start = time.perf_counter()
        train_loss, train_acc = train(model, device, train_loader, optimizer, epoch,
                                      batch_scheduler=scheduler if per_batch else None, bfloat16=bfloat16,
                                      label_smoothing=recipe["label_smoothing"], ema=ema, verbose=verbose)
        if not per_batch:
            scheduler.step()
        test_loss, test_acc = test(model if ema is None else ema.module, device, test_loader, verbose, recipe["test_shifts"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        entry = dict(
            epoch=epoch,
            lr=lr,
            train_loss=train_loss,
            train_acc=train_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=time.perf_counter() - start,
        )
        history.append(entry)
        if on_epoch_end is not None:
            on_epoch_end(entry)
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # keep the weights that were tested
    return history
