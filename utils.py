"""Data, training loops, seeding, device choice and plots for the MNIST classifier in model.py.

Everything a notebook or script needs besides the model itself lives here, so that copying
`model.py` and `utils.py` into another project is enough to train. Importing it loads torch and
torchvision only; matplotlib is imported by the plotting functions when they are called.
"""

import contextlib
import copy
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
# of every later call; make a changed copy instead: dict(utils.RECIPE, epochs=2).
RECIPE = MappingProxyType(
    dict(
        epochs=8,
        batch_size=256,
        test_batch_size=1000,
        schedule="onecycle",  # "onecycle": stepped every batch; "step": StepLR, stepped every epoch
        lr=0.2,  # OneCycle's peak learning rate (StepLR's starting one)
        warmup_fraction=0.2,  # OneCycle: share of the steps spent raising the learning rate to its peak
        step_size=6,  # StepLR: epochs between the learning rate's drops by 10x
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        label_smoothing=0.0,  # share of each target spread over the other classes (F.cross_entropy)
        ema_decay=0.0,  # > 0: test and keep an exponential moving average of the weights, updated every batch
        test_shifts=0,  # > 0: test-time augmentation, averaging each test image and its 4 shifts by this many pixels
        channels_last=True,  # memory layout of the model's weights and activations: faster convolutions
        bfloat16=True,  # train under bfloat16 autocast where the hardware computes it fast (bfloat16_is_fast)
        max_rotation=10.0,  # degrees, training augmentation only
        max_shift=0.1,  # fraction of the image size
        scale_range=(0.9, 1.1),
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
    emulated and slower than float32: on a 2-core AMD EPYC, a training step of OptimizedNet took
    0.80x the float32 time with its bfloat16 instructions, but 1.50x with oneDNN capped at
    AVX512_CORE and 7.94x at AVX2 (bench/results/bfloat16.txt).
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
    broadcasting: on 2 CPU cores that halved the augmentation's time (0.70 s to 0.32 s an epoch
    at batch 128), since affine_grid's batched matmul took most of it.
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
    grid = torch.stack([cos * x - sin * y + shift_x, sin * x + cos * y + shift_y], dim=-1)
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
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe["lr"],
        momentum=recipe["momentum"],
        nesterov=recipe["nesterov"],
        weight_decay=recipe["weight_decay"],
    )
    if recipe["schedule"] == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=recipe["lr"],
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


# ----------------------------------------------------------------------------------------------
# Summaries and plots (the notebook's figures)
# ----------------------------------------------------------------------------------------------


def model_summary(model, device=None):
    """torchsummary's layer table, whatever device the model is on (CUDA, MPS or CPU).

    torchsummary feeds its test input on the device it is told, which must be the model's; it
    knows only "cuda" and "cpu". So it always summarises a CPU copy: the model itself stays where
    it is, and the table is the same. `device` is accepted for the classic call and not needed.
    """
    from torchsummary import summary

    summary(copy.deepcopy(model).cpu(), input_size=(1, 28, 28), device="cpu")


def _shown_once(figure, alt):
    """Return the figure, shown exactly once in Jupyter whether or not the cell ends with `;`.

    With the inline backend, pyplot shows every open figure at the end of the cell, and Jupyter
    shows the cell's value again. So the figure is displayed here, taken off pyplot's list, and
    skipped once as the cell's value. It is displayed as PNG and as an <img> with alt text, which
    Jupyter and exported HTML prefer (nbconvert keeps no alt text for a bare PNG); the plain-text
    form is the alt text itself. Elsewhere the figure is returned as it is, ready for savefig.
    """
    import matplotlib

    figure.tight_layout()
    if "inline" in matplotlib.get_backend() and "ipykernel" in sys.modules:
        import base64
        import html

        import matplotlib.pyplot as plt
        from IPython.display import display

        plt.close(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        png = base64.b64encode(buffer.getvalue()).decode("ascii")
        image = f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">'
        display({"image/png": png, "text/html": image, "text/plain": alt}, raw=True)

        def skip_once():
            del figure._ipython_display_  # a later display(figure) shows it again

        figure._ipython_display_ = skip_once
    return figure


def _image_grid(images, titles, columns, title):
    import matplotlib.pyplot as plt

    rows = max(1, (len(images) + columns - 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, text in zip(axes.flat, images, titles):
        axis.imshow(image.squeeze().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        axis.set_title(text, fontsize=9)
    figure.suptitle(title)
    return figure


def _stored_images(loader, count):
    """The first `count` images of a loader's dataset as stored (0 to 1 floats), and their labels.

    Works for TensorLoader, for a DataLoader over torchvision's MNIST (or a Subset of it), and
    falls back to the loader's own first batch for any other dataset (shown un-normalised).
    """
    if isinstance(loader, TensorLoader):
        return loader.images[:count].unsqueeze(1).float().div(255), loader.labels[:count].cpu()
    dataset, indices = loader.dataset, range(count)
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, dataset.indices[:count]
    if hasattr(dataset, "data") and hasattr(dataset, "targets"):
        indices = list(indices)
        return torch.as_tensor(dataset.data[indices]).unsqueeze(1).float().div(255), torch.as_tensor(dataset.targets)[indices]
    images, labels = next(iter(loader))
    return images[:count].cpu() * MNIST_STD + MNIST_MEAN, labels[:count].cpu()


def _dataset_images(dataset, indices):
    """dataset[i]'s image for each index, transformed as the dataset does it, un-normalised."""
    return torch.stack([dataset[i][0] for i in indices]).cpu() * MNIST_STD + MNIST_MEAN


def plot_samples(train_loader, count=10):
    """The first training images as stored (top row) and two random augmentations of each.

    The augmentations are the ones training uses: random_affine for a TensorLoader, the dataset's
    own transform for a torchvision DataLoader.
    """
    images, labels = _stored_images(train_loader, count)
    labels = labels.tolist()
    if isinstance(train_loader, TensorLoader):
        augmented = [random_affine(images, **train_loader.augment) for _ in range(2)] if train_loader.augment else []
    else:  # the dataset's own random transform, drawn twice
        augmented = [_dataset_images(train_loader.dataset, range(len(labels))) for _ in range(2)]
    rows = [images] + augmented
    titles = [f"{label}" for label in labels] + [f"{label} aug." for label in labels] * len(augmented)
    figure = _image_grid(torch.cat(rows).clamp(0, 1), titles, len(labels), "Training images: original, then augmented")
    return _shown_once(figure, f"The first {len(labels)} training images, labelled {labels}, and {len(augmented)} random augmentations of each")


def plot_history(history):
    """Loss and accuracy per epoch, training and test; every epoch on the x axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(epochs, [entry["train_loss"] for entry in history], "o-", label="train")
    loss_axis.plot(epochs, [entry["test_loss"] for entry in history], "o-", label="test")
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    accuracies = [entry[key] for entry in history for key in ("train_acc", "test_acc")]
    accuracy_axis.plot(epochs, [entry["train_acc"] for entry in history], "o-", label="train (augmented)")
    accuracy_axis.plot(epochs, [entry["test_acc"] for entry in history], "o-", label="test")
    accuracy_axis.axhline(99.4, color="gray", linestyle="--", linewidth=1, label="99.4%")
    # From just below the lowest point (or 97%, whichever is lower) to 100%: every point visible.
    bottom = min([97.0] + accuracies)
    accuracy_axis.set(title="Accuracy", xlabel="epoch", ylabel="percent", ylim=(max(0.0, bottom - 0.05 * (100 - bottom) - 0.1), 100))
    for axis in (loss_axis, accuracy_axis):
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    final = history[-1]
    return _shown_once(
        figure,
        f"Loss and accuracy over {len(history)} epoch{'s' if len(history) != 1 else ''}; "
        f"final test accuracy {final['test_acc']:.2f}%, test loss {final['test_loss']:.4f}",
    )


def plot_misclassified(test_loader, predictions, targets, count=20):
    """Test images the model gets wrong, each titled with its true and predicted label.

    predictions, targets: from `predict(model, device, test_loader)`, in the loader's order, so
    the images are looked up rather than run through the model again. The loader must not shuffle.
    """
    import matplotlib.pyplot as plt

    if getattr(test_loader, "shuffle", False) or isinstance(getattr(test_loader, "sampler", None), torch.utils.data.RandomSampler):
        raise ValueError("plot_misclassified needs a test loader that keeps its order (shuffle=False)")
    wrong = (predictions != targets).nonzero().flatten()[:count].tolist()
    if not wrong:
        figure = plt.figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "No misclassified test images", ha="center")
        return _shown_once(figure, "No misclassified test images")
    if isinstance(test_loader, TensorLoader):
        images = test_loader.images[wrong].unsqueeze(1).float().div(255)
    else:
        images = _dataset_images(test_loader.dataset, wrong)
    titles = [f"true {targets[i]} / pred {predictions[i]}" for i in wrong]
    figure = _image_grid(images.clamp(0, 1), titles, 5, f"The first {len(wrong)} misclassified test images")
    return _shown_once(figure, f"{len(wrong)} misclassified test images: " + ", ".join(titles))


def plot_confusion_matrix(predictions, targets):
    """Counts of true (rows) against predicted (columns) labels; the diagonal is left blank."""
    import matplotlib.pyplot as plt

    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix.index_put_((targets, predictions), torch.ones_like(targets), accumulate=True)
    errors = matrix.clone().fill_diagonal_(0)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    shown = axis.imshow(errors.numpy(), cmap="Reds", vmin=0, vmax=max(1, errors.max().item()))
    for true in range(10):
        for predicted in range(10):
            value = matrix[true, predicted].item()
            if value:
                if true == predicted:
                    color = "gray"
                else:  # white on the dark half of the colour map, black on the light half
                    color = "white" if errors[true, predicted] > 0.5 * errors.max() else "black"
                axis.text(predicted, true, value, ha="center", va="center", fontsize=8, color=color)
    axis.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
             title=f"Confusion matrix ({errors.sum().item()} errors; diagonal in gray)")
    figure.colorbar(shown, ax=axis, label="misclassified images")
    worst = divmod(int(errors.argmax()), 10)
    return _shown_once(
        figure,
        f"Confusion matrix of {len(targets)} test images: {errors.sum().item()} errors, the most common "
        f"true {worst[0]} predicted as {worst[1]} ({errors.max().item()} times)",
    )


# ----------------------------------------------------------------------------------------------
# Saved models and your own digits
# ----------------------------------------------------------------------------------------------
# Imports used only here are made inside the functions, so that this section stands on its own.
# Pillow comes with torchvision: reading photos adds no dependency.

# How an image is made to look like an MNIST digit (prepare_digit).
DIGIT_BOX = 20  # MNIST digits were fitted into 20 x 20 pixels, keeping their aspect ratio ...
DIGIT_CANVAS = 28  # ... then placed in 28 x 28 so that their centre of mass falls on pixel 14.
MIN_INK_CONTRAST = 0.1  # ink must be this much darker than the paper (on a 0-1 scale) to count
WORKING_SIDE = 1000  # larger photos are first shrunk to about this (the digit ends up 20 pixels tall)


class ModelFileError(ValueError):
    """A model file that cannot be read, or that holds no model this project knows."""


class DigitImageError(ValueError):
    """An image that cannot be read, or in which no dark digit can be found.

    `reason` says what is wrong without naming the file (predict.py puts the file name in front);
    str(error) names the file as well when it was given by path.
    """

    def __init__(self, reason, source=None):
        super().__init__(f"{source}: {reason}" if source is not None else reason)
        self.reason = reason
        self.source = source


def save_model(model, path):
    """Save `model`'s class name and weights to `path`, for load_model and predict.py.

    The file holds a plain dict of a string and CPU tensors, so `torch.load(path,
    weights_only=True)` reads it on any machine without running pickled code, and a model trained
    on a GPU loads on a computer without one. The weights are written to a temporary file in the
    same folder and renamed over `path` in one step: an interrupted or failed save leaves the old
    file (or none), never half a model that fails later.
    """
    record = {
        "format": "mnist-classifier",
        "class": type(model).__name__,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    # Written whole or not at all: to a temporary file beside `path`, then renamed over it.
    temporary = f"{path}.partial"
    try:
        torch.save(record, temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def _one_line(text, limit=300):
    """An error message on one line, cut to `limit` characters (load_state_dict's run long)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_model(path, device=None):
    """The model saved at `path`, in eval mode, on `device` (default: the CPU).

    Reads the files save_model writes and plain state_dicts of OptimizedNet (what `train.py
    --save-model` wrote before it used save_model). The tensors are mapped to the CPU while
    loading, so a model saved from a GPU loads where there is none. The class is looked up by
    name in model.py, so any model defined there can be saved and loaded. The CPU is the default
    device because classifying a few photos takes milliseconds there, less than starting a GPU.

    Raises ModelFileError, naming the file, when it is missing, unreadable or not such a model.
    """
    import torch.nn as nn

    import model as model_module

    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except Exception as error:  # torch.load raises assorted types for foreign or truncated files
        raise ModelFileError(f"{path}: not a model file that torch.load can read ({_one_line(error, 150)})") from None

    if isinstance(record, dict) and "state_dict" in record and "class" in record:
        class_name, state_dict = record["class"], record["state_dict"]
    elif isinstance(record, dict) and record and all(isinstance(value, torch.Tensor) for value in record.values()):
        class_name, state_dict = "OptimizedNet", record  # a bare state_dict: the project's model
    else:
        raise ModelFileError(f"{path}: holds no model (expected a file written by utils.save_model or a state_dict)")

    model_class = getattr(model_module, class_name, None) if isinstance(class_name, str) else None
    if not (isinstance(model_class, type) and issubclass(model_class, nn.Module)):
        raise ModelFileError(f"{path}: holds a {class_name!r}, which is no model class in model.py")
    try:
        model = model_class()
    except TypeError as error:  # a class whose constructor needs arguments the file does not hold
        raise ModelFileError(f"{path}: {class_name} cannot be built with its default arguments ({_one_line(error)})") from None
    try:
        model.load_state_dict(state_dict)
    except Exception as error:  # missing or unexpected keys, mismatched shapes
        raise ModelFileError(f"{path}: its weights do not fit {class_name} ({_one_line(error)})") from None
    return model.to(device or "cpu").eval()


def _read_grey(image):
    """A PIL image as a float array, 0 = black to 1 = white, the right way up.

    Photos from phones store their orientation in EXIF instead of turning the pixels, hence
    exif_transpose. Transparent pixels count as white paper. 16- and 32-bit images are scaled by
    their brightest pixel: prepare_digit only compares ink with paper, so the scale is immaterial.
    """
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = np.asarray(image, dtype=np.float64)
        return grey / max(float(grey.max()), 1e-12)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        from PIL import Image

        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _otsu_threshold(values):
    """The level that best splits `values` (in [0, 1]) into two classes (Otsu, 1979)."""
    counts, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = sum_low / weight_low
        mean_high = (sum_low[-1] - sum_low) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return edges[int(np.nanargmax(between)) + 1]


def prepare_digit(image):
    """A photo or scan of a dark digit on light paper, made the way MNIST's digits were made.

    image: a PIL image or the path of an image file (PNG, JPEG, anything Pillow reads; colour or
    grey, any size). Returns a float tensor (1, 28, 28) normalised like the training data, ready
    for the model (stack several for a batch).

    A model only recognises what looks like its training data, and MNIST's digits are white on
    black, with no paper left, cropped to the ink, scaled to fit 20 x 20 pixels keeping their
    aspect ratio, and placed in 28 x 28 with their centre of mass in the middle. So the image is
    turned grey and inverted (ink bright); Otsu's threshold splits paper from ink, the paper's
    level (the 99.5th percentile of the paper's pixels, so that grey paper, uneven light and
    noise all go to 0) is subtracted, and the ink is stretched so its median shade is full
    strength; then it is cropped, fitted (antialiased) and centred. Photos
    larger than 1000 pixels are shrunk first (on 2 CPU cores a 12-megapixel JPEG took 1.4 s
    unshrunk, 0.4 s shrunk).

    Raises DigitImageError when the file cannot be read or holds no ink.
    """
    from PIL import Image

    source = None
    if not isinstance(image, Image.Image):
        source = image
        try:
            with Image.open(image) as opened:
                opened.load()
                grey = _read_grey(opened)
        except FileNotFoundError:
            raise DigitImageError("no such file", source) from None
        except IsADirectoryError:
            raise DigitImageError("is a folder, not an image", source) from None
        except Image.UnidentifiedImageError:
            raise DigitImageError("not an image file that Pillow can read", source) from None
        except Exception as error:  # truncated and corrupt files raise OSError, SyntaxError, ValueError...
            raise DigitImageError(f"cannot read the image ({_one_line(error, 150)})", source) from None
    else:
        grey = _read_grey(image)

    factor = -(-max(grey.shape) // WORKING_SIDE)
    if factor > 1:  # a phone's 12-megapixel photo: average blocks of factor x factor pixels first
        height, width = (side // factor * factor for side in grey.shape)
        grey = grey[:height, :width].reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))
    ink = 1.0 - grey
    if ink.max() - ink.min() < MIN_INK_CONTRAST:
        raise DigitImageError("no digit found: the image is blank (all one shade)", source)
    threshold = _otsu_threshold(ink)
    paper, marks = ink[ink < threshold], ink[ink >= threshold]
    paper_level = np.percentile(paper, 99.5) if paper.size else 0.0
    ink_level = np.median(marks)
    if ink_level - paper_level < MIN_INK_CONTRAST:
        raise DigitImageError("no digit found: nothing is much darker than the paper", source)
    ink = np.clip((ink - paper_level) / (ink_level - paper_level), 0.0, 1.0)
    ink[ink < 0.15] = 0.0  # paper noise that rose above the paper level: not ink

    rows, columns = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    ink = ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    fitted = Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    fitted = np.clip(np.asarray(fitted, dtype=np.float64), 0.0, 1.0)
    fitted /= max(fitted.max(), 1e-12)  # thin strokes dim when shrunk; MNIST's ink is at full strength

    mass = fitted.sum()
    centre_y = (fitted.sum(axis=1) * np.arange(fitted.shape[0])).sum() / mass
    centre_x = (fitted.sum(axis=0) * np.arange(fitted.shape[1])).sum() / mass
    middle = DIGIT_CANVAS // 2
    top = min(max(round(middle - centre_y), 0), DIGIT_CANVAS - fitted.shape[0])
    left = min(max(round(middle - centre_x), 0), DIGIT_CANVAS - fitted.shape[1])
    canvas = np.zeros((DIGIT_CANVAS, DIGIT_CANVAS), dtype=np.float32)
    canvas[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return torch.from_numpy(canvas).sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(0)


@torch.inference_mode()
def predict_digits(model, device, images, batch_size=256, skip_unreadable=False):
    """The digit the model sees in each image, and its probability: a list of (digit, p).

    images: paths, PIL images, or tensors already made by prepare_digit, in any mix. They go
    through the model in batches of `batch_size`. The model is evaluated in eval mode (BatchNorm
    with its running statistics, no dropout) and put back in the mode it was in.
    skip_unreadable: an image that cannot be read or holds no digit gets its DigitImageError in
    its place in the list, instead of stopping the whole call (what predict.py wants).
    """
    tensors = []
    for image in images:
        try:
            tensors.append(image if isinstance(image, torch.Tensor) else prepare_digit(image))
        except DigitImageError as error:
            if not skip_unreadable:
                raise
            tensors.append(error)
    readable = [tensor for tensor in tensors if isinstance(tensor, torch.Tensor)]
    was_training = model.training
    model.eval()
    predictions = []
    try:
        for start in range(0, len(readable), batch_size):
            batch = torch.stack(readable[start : start + batch_size]).to(device)
            probabilities, digits = F.softmax(model(batch).float(), dim=1).max(dim=1)
            predictions += [(int(d), float(p)) for d, p in zip(digits.cpu(), probabilities.cpu())]
    finally:
        model.train(was_training)
    predictions = iter(predictions)
    return [next(predictions) if isinstance(tensor, torch.Tensor) else tensor for tensor in tensors]
