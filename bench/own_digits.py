"""How well a saved model reads "photos" of digits: the path predict.py takes, measured.

Each MNIST test digit is redrawn as a photo of dark ink on light paper: a canvas 60-400 pixels
wide and high, the digit 35-85% of the canvas's shorter side, placed anywhere on it, paper of
shade 150-255 with a light gradient and noise, ink of shade 10-90 (never pure black), half of them
in colour (yellowish paper), half saved as PNG and half as JPEG (quality 60-95). The files are then
read back exactly as predict.py reads them (file -> digits.prepare_digit -> digits.predict_digits).

    python train.py --save-model digits.pt
    python -m bench.own_digits --model digits.pt --data-dir data

Seeded: the same arguments draw the same photos. Prints accuracy overall and by paper shade,
canvas size, file format and digit, beside the model's accuracy on the MNIST test images as they
are, and the seconds taken.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

import digits
import model as models
import utils
from bench.common import machine

TARGET = 97.0
PAPER_BUCKETS = [(150, 184), (185, 219), (220, 255)]
SIZE_BUCKETS = [(60, 139), (140, 269), (270, 400)]  # the canvas's shorter side, pixels


def draw_photo(digit, rng):
    """One MNIST digit (28 x 28, ink bright) as a photo of dark ink on light paper.

    Returns the PIL image, the options to save it with, and what was drawn (paper shade, the
    canvas's shorter side, file format).
    """
    width, height = (int(v) for v in rng.integers(60, 401, size=2))
    rows, columns = np.nonzero(digit.any(axis=1))[0], np.nonzero(digit.any(axis=0))[0]
    digit = digit[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = rng.uniform(0.35, 0.85) * min(width, height) / max(digit.shape)
    size = (max(1, round(digit.shape[1] * scale)), max(1, round(digit.shape[0] * scale)))
    size = (min(size[0], width), min(size[1], height))
    ink_alpha = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.BICUBIC), dtype=np.float64) / 255
    alpha = np.zeros((height, width))
    top, left = rng.integers(0, height - size[1] + 1), rng.integers(0, width - size[0] + 1)
    alpha[top : top + size[1], left : left + size[0]] = np.clip(ink_alpha, 0, 1)

    paper_shade = int(rng.integers(150, 256))
    ink_shade = min(int(rng.integers(10, 91)), paper_shade - 80)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width]
    along = (np.cos(angle) * x / width + np.sin(angle) * y / height) / 2  # -0.5 to 0.5 across the sheet
    paper = paper_shade + rng.uniform(0, 20) * along + rng.normal(0, rng.uniform(0, 5), (height, width))
    photo = paper - (paper - ink_shade) * alpha

    if rng.random() < 0.5:  # yellowish paper and ink, in colour
        tint = np.array([1.0, 0.97, 0.88])
        pixels = np.clip(photo[..., None] * tint, 0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels)
    else:
        picture = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))
    file_format = "png" if rng.random() < 0.5 else "jpg"
    options = {"quality": int(rng.integers(60, 96))} if file_format == "jpg" else {}
    return picture, options, dict(paper=paper_shade, side=min(width, height), format=file_format)


def bucket_name(value, buckets):
    for low, high in buckets:
        if low <= value <= high:
            return f"{low}-{high}"
    raise ValueError(value)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.own_digits", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, metavar="FILE", help="model saved by train.py --save-model")
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    parser.add_argument("--count", type=int, default=10_000, help="how many test digits to redraw (the first COUNT)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the photos' sizes, places and shades")
    parser.add_argument("--keep", metavar="FOLDER", help="write the photos to FOLDER and keep them (default: a temporary folder)")
    args = parser.parse_args()

    model = models.load_model(args.model, "cpu")
    _, test_set = utils.load_mnist_datasets(args.data_dir)
    test_images, labels = test_set.data[: args.count].numpy(), test_set.targets[: args.count].numpy()

    # The model on the test images as they are, for comparison.
    as_is = torch.from_numpy(test_images).unsqueeze(1).float().div(255).sub(utils.MNIST_MEAN).div(utils.MNIST_STD)
    as_is_right = sum(digit == label for (digit, _), label in zip(digits.predict_digits(model, "cpu", list(as_is)), labels))

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or temporary
        os.makedirs(folder, exist_ok=True)
        start = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        paths, drawn = [], []
        for index, digit in enumerate(test_images):
            picture, options, facts = draw_photo(digit, rng)
            path = os.path.join(folder, f"{index:05d}-{labels[index]}.{facts['format']}")
            picture.save(path, **options)
            paths.append(path)
            drawn.append(facts)
        draw_seconds = time.perf_counter() - start

        start = time.perf_counter()
        predicted, failures = [], 0
        for path, result in zip(paths, digits.predict_digits(model, "cpu", paths, skip_unreadable=True)):
            if isinstance(result, digits.DigitImageError):
                failures += 1
                print(f"{path}: error: {result.reason}")
            predicted.append(-1 if isinstance(result, digits.DigitImageError) else result[0])
        predicted = np.array(predicted)
        read_seconds = time.perf_counter() - start

    right = predicted == labels
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.own_digits {' '.join(sys.argv[1:])}")
    print(f"Model: {type(model).__name__} from {args.model}; on the {len(labels)} MNIST test images as they are: "
          f"{100 * as_is_right / len(labels):.2f}%")
    print(f"Photos: {len(labels)} (seed {args.seed}), {sum(f['format'] == 'png' for f in drawn)} PNG and "
          f"{sum(f['format'] == 'jpg' for f in drawn)} JPEG; {failures} could not be prepared")
    print()
    print("| photos | count | correct |")
    print("|---|---:|---:|")

    def row(name, mask):
        print(f"| {name} | {mask.sum()} | {100 * right[mask].mean():.2f}% |")

    row("all", np.ones(len(labels), dtype=bool))
    paper = np.array([bucket_name(f["paper"], PAPER_BUCKETS) for f in drawn])
    for low, high in PAPER_BUCKETS:
        row(f"paper shade {low}-{high}", paper == f"{low}-{high}")
    side = np.array([bucket_name(f["side"], SIZE_BUCKETS) for f in drawn])
    for low, high in SIZE_BUCKETS:
        row(f"shorter side {low}-{high} px", side == f"{low}-{high}")
    formats = np.array([f["format"] for f in drawn])
    for name in ("png", "jpg"):
        row(f"{name.upper()} files", formats == name)
    for digit in range(10):
        row(f"digit {digit}", labels == digit)
    print()
    accuracy = 100 * right.mean()
    print(f"Correct: {right.sum()}/{len(labels)} = {accuracy:.2f}% (target >= {TARGET}%: {'met' if accuracy >= TARGET else 'NOT met'})")
    print(f"Seconds: {draw_seconds:.1f} drawing and saving the photos, {read_seconds:.1f} reading and predicting them "
          f"({1000 * read_seconds / len(labels):.1f} ms a photo)")


if __name__ == "__main__":
    main()
