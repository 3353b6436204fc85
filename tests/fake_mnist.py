"""A tiny MNIST written in the original IDX format, so no test downloads data."""

import gzip
import struct

import numpy as np

TRAIN_SIZE, TEST_SIZE = 512, 256


def write_idx(path, array, compress=False):
    """Write a uint8 array in the IDX format of the original MNIST files."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def synthetic_digits(count, seed):
    """Images whose class is readable from them: label k lights up a bar in row 2k+4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 40, (count, 28, 28))
    for image, label in zip(images, labels):
        image[2 * label + 4, 4:24] = 255
    return images, labels


def make_mnist_folder(root, compress=False):
    """root/MNIST/raw/ with the four files (gzipped as NAME.gz if compress). Returns root."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    suffix = ".gz" if compress else ""
    for split, size, seed in (("train", TRAIN_SIZE, 0), ("t10k", TEST_SIZE, 1)):
        images, labels = synthetic_digits(size, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return root
