"""Photos of digits drawn with Pillow (a thick "1" or "7", dark on light paper), for the tests of
digits.py and predict.py: no test needs MNIST or a trained model to read a photo."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import utils

BACKGROUND = -0.4242129  # (0 - MNIST_MEAN) / MNIST_STD: a pixel with no ink, after normalisation
FULL_INK = 2.8214865  # (1 - MNIST_MEAN) / MNIST_STD: full-strength ink
STROKES = {  # polylines in a unit box, x to the right, y down
    "1": [[(0.55, 0.0), (0.55, 1.0)], [(0.3, 0.2), (0.55, 0.0)]],
    "7": [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
}


def draw_digit(digit="7", canvas=(400, 300), box=(150, 40, 120), paper=170, ink=40, mode="RGB", noise=0.0, seed=0):
    """A photo of `digit`: strokes of shade `ink` in a box (left, top, height) on paper of shade `paper`."""
    left, top, height = box
    picture = Image.new("L", canvas, paper)
    pen = ImageDraw.Draw(picture)
    for line in STROKES[digit]:
        points = [(left + x * height * 0.7, top + y * height) for x, y in line]
        pen.line(points, fill=ink, width=max(2, round(height * 0.12)), joint="curve")
    if noise:
        pixels = np.asarray(picture, dtype=np.float64) + np.random.default_rng(seed).normal(0, noise, picture.size[::-1])
        picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if mode == "RGB":  # yellowish paper, bluish ink: the colour must not matter
        return Image.merge("RGB", [picture.point(lambda v: min(255, v + 10)), picture, picture.point(lambda v: max(0, v - 15))])
    return picture.convert(mode)


def save(picture, path, **options):
    picture.save(path, **options)
    return str(path)


def ink_of(tensor):
    """A prepared digit back on the 0 (no ink) to 1 scale, as a numpy array (28, 28)."""
    return (tensor[0] * utils.MNIST_STD + utils.MNIST_MEAN).numpy()


def check_mnist_like(tensor):
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32
    pixels = tensor[0]
    # Paper removed: at least the 28 x 28 - 20 x 20 pixels around the digit hold exactly no ink.
    assert pixels.min().item() == pytest.approx(BACKGROUND, abs=1e-6)
    assert (pixels == pixels.min()).sum() >= 28 * 28 - 20 * 20
    assert pixels.max() > 2.5  # inverted: the ink is bright, near full strength
    ink = ink_of(tensor)
    rows, columns = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    height, width = rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1
    assert max(height, width) == 20  # fitted in 20 x 20
    centre_y = (ink.sum(axis=1) * np.arange(28)).sum() / ink.sum()
    centre_x = (ink.sum(axis=0) * np.arange(28)).sum() / ink.sum()
    assert abs(centre_y - 14) <= 1 and abs(centre_x - 14) <= 1  # centred by mass
    return height, width
