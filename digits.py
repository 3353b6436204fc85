"""Your own photos of digits, made to look like MNIST's, and the digit a model sees in each.

`prepare_digit` turns a photo or scan of a dark digit on light paper into the 1 x 28 x 28 tensor
the models were trained on; `predict_digits` runs a model over many of them. Pillow comes with
torchvision, so reading photos adds no dependency.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from utils import MNIST_MEAN, MNIST_STD

# How an image is made to look like an MNIST digit (prepare_digit).
DIGIT_BOX = 20  # MNIST digits were fitted into 20 x 20 pixels, keeping their aspect ratio ...
DIGIT_CANVAS = 28  # ... then placed in 28 x 28 so that their centre of mass falls on pixel 14.
MIN_INK_CONTRAST = 0.1  # ink must be this much darker than the paper (on a 0-1 scale) to count
WORKING_SIDE = 1000  # larger photos are first shrunk to about this (the digit ends up 20 pixels tall)


class DigitImageError(ValueError):
    """An image that cannot be read, or in which no dark digit can be found.

    `reason` says what is wrong without naming the file (predict.py puts the file name in front);
    str(error) names the file as well when it was given by path.
    """

    def __init__(self, reason, source=None):
        super().__init__(f"{source}: {reason}" if source is not None else reason)
        self.reason = reason
        self.source = source


def _read_grey(image):
    """A PIL image as a float array, 0 = black to 1 = white, the right way up.

    Photos from phones store their orientation in EXIF instead of turning the pixels, hence
    exif_transpose. Transparent pixels count as white paper. 16- and 32-bit images are scaled by
    their brightest pixel: prepare_digit only compares ink with paper, so the scale is immaterial.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = np.asarray(image, dtype=np.float64)
        return grey / max(float(grey.max()), 1e-12)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
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
            reason = " ".join(str(error).split())[:150]  # on one line, however Pillow put it
            raise DigitImageError(f"cannot read the image ({reason})", source) from None
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

