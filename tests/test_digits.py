"""digits.py: a photo made the way MNIST's digits were made, and the digit a model sees in it."""

import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import digits
from model import OptimizedNet
from photos import FULL_INK, check_mnist_like, draw_digit, ink_of, save


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
@pytest.mark.parametrize("extension", ["png", "jpg"])
def test_a_photo_becomes_an_mnist_like_digit(tmp_path, mode, extension):
    picture = draw_digit("7", canvas=(500, 380), box=(300, 200, 150), paper=160, ink=60, mode=mode, noise=3)
    if extension == "jpg" and mode == "RGBA":
        picture = picture.convert("RGB")
    path = save(picture, tmp_path / f"seven.{extension}", **({"quality": 80} if extension == "jpg" else {}))
    height, width = check_mnist_like(digits.prepare_digit(path))
    assert height == 20 and 13 <= width <= 16  # the 7 is 0.7 as wide as tall, plus its stroke


def test_a_tall_thin_digit_keeps_its_aspect_ratio():
    height, width = check_mnist_like(digits.prepare_digit(draw_digit("1", box=(40, 30, 200), paper=230, ink=20)))
    assert height == 20 and width <= 12  # stretched to 20 x 20 it would be as wide as tall


def test_a_thin_pen_line_comes_out_at_full_strength():
    picture = Image.new("L", (400, 400), 235)
    ImageDraw.Draw(picture).line([(300, 40), (100, 360)], fill=30, width=3)  # shrunk 16x: a fifth of a pixel wide
    assert digits.prepare_digit(picture).max() == pytest.approx(FULL_INK, abs=1e-5)


def test_size_place_paper_and_format_do_not_matter(tmp_path):
    small = draw_digit("7", canvas=(60, 60), box=(10, 8, 40), paper=250, ink=0, mode="L")
    large = draw_digit("7", canvas=(900, 500), box=(620, 60, 360), paper=150, ink=70, mode="RGB", noise=4)
    prepared_small = ink_of(digits.prepare_digit(small))
    prepared_large = ink_of(digits.prepare_digit(save(large, tmp_path / "large.jpg", quality=75)))
    huge = draw_digit("7", canvas=(2600, 1400), box=(300, 500, 800), paper=200, ink=50, mode="RGB", noise=3)
    one = ink_of(digits.prepare_digit(draw_digit("1", box=(40, 30, 200))))
    assert np.abs(prepared_small - prepared_large).mean() < 0.03  # measured 0.011
    assert np.abs(prepared_small - ink_of(digits.prepare_digit(huge))).mean() < 0.03  # shrunk before it is read
    assert np.abs(prepared_small - one).mean() > 0.08  # the measure does tell a 7 from a 1 (0.105)


def test_the_top_of_a_seven_is_at_the_top(tmp_path):
    ink = ink_of(digits.prepare_digit(draw_digit("7")))
    rows = np.nonzero(ink.any(axis=1))[0]
    top_bar = ink[rows[0] : rows[0] + 3].sum()
    bottom = ink[rows[-1] - 2 : rows[-1] + 1].sum()
    assert top_bar > 3 * bottom  # bright ink where the dark bar was: inverted, not flipped


def test_exif_rotation_is_applied(tmp_path):
    upright = draw_digit("7", mode="L")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display", as phones write it
    path = save(upright.rotate(90, expand=True), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=90)
    expected = ink_of(digits.prepare_digit(upright))
    assert np.abs(ink_of(digits.prepare_digit(path)) - expected).mean() < 0.03
    assert np.abs(ink_of(digits.prepare_digit(upright.rotate(90, expand=True))) - expected).mean() > 0.08  # 0.14


def test_sixteen_bit_and_transparent_images(tmp_path):
    eight_bit = draw_digit("7", mode="L")
    expected = ink_of(digits.prepare_digit(eight_bit))
    sixteen_bit = Image.fromarray(np.asarray(eight_bit).astype(np.uint16) * 257)
    path = save(sixteen_bit, tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    assert np.abs(ink_of(digits.prepare_digit(path)) - expected).mean() < 0.02
    # Ink on a transparent sheet whose hidden colour is black: the paper must count as white.
    alpha = 255 - np.asarray(eight_bit)
    sheet = np.zeros(alpha.shape + (4,), dtype=np.uint8)
    sheet[..., 3] = np.where(alpha > 100, 255, 0)
    path = save(Image.fromarray(sheet), tmp_path / "sheet.png")
    check_mnist_like(digits.prepare_digit(path))
    # The same as a palette image whose transparent colour is black.
    palette = Image.frombytes("P", eight_bit.size, (alpha > 100).astype(np.uint8).tobytes())
    palette.putpalette([0, 0, 0, 30, 30, 30])
    path = save(palette, tmp_path / "palette.png", transparency=0)
    assert Image.open(path).mode == "P"
    check_mnist_like(digits.prepare_digit(path))


@pytest.mark.parametrize("picture", [Image.new("L", (200, 200), 200), draw_digit("7", ink=170, noise=3), Image.new("RGBA", (50, 50))])
def test_an_image_without_ink_is_refused(picture):
    with pytest.raises(digits.DigitImageError, match="no digit"):
        digits.prepare_digit(picture)


def test_unreadable_files_are_refused_with_their_name(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(os.urandom(300))
    with pytest.raises(digits.DigitImageError, match="not an image") as error:
        digits.prepare_digit(str(broken))
    assert str(broken) in str(error.value) and str(broken) not in error.value.reason
    truncated = tmp_path / "truncated.png"
    whole = open(save(draw_digit(noise=3), tmp_path / "whole.png"), "rb").read()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(digits.DigitImageError, match="cannot read"):
        digits.prepare_digit(truncated)
    with pytest.raises(digits.DigitImageError, match="no such file"):
        digits.prepare_digit(tmp_path / "missing.png")


def test_predict_digits_batches_and_keeps_the_model_mode():
    torch.manual_seed(0)
    model = OptimizedNet().train()
    images = [draw_digit(digit, box=(60 + 20 * i, 40, 100 + 10 * i)) for i, digit in enumerate("17171")]
    one_batch = digits.predict_digits(model, "cpu", images)
    assert model.training  # put back as it was
    in_twos = digits.predict_digits(model, "cpu", [digits.prepare_digit(image) for image in images], batch_size=2)
    assert [digit for digit, _ in in_twos] == [digit for digit, _ in one_batch]
    assert [p for _, p in in_twos] == pytest.approx([p for _, p in one_batch], rel=1e-5)
    model.eval()
    for (digit, probability), image in zip(one_batch, images):
        logits = model(digits.prepare_digit(image).unsqueeze(0))[0]
        assert digit == logits.argmax().item() and probability == pytest.approx(logits.softmax(0).max().item(), rel=1e-5)


def test_predict_digits_raises_on_an_unreadable_image_unless_told_to_skip(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    model, good = OptimizedNet().eval(), draw_digit("1")
    with pytest.raises(digits.DigitImageError, match="not an image file"):
        digits.predict_digits(model, "cpu", [good, broken])
    results = digits.predict_digits(model, "cpu", [good, broken, good], skip_unreadable=True)
    assert isinstance(results[1], digits.DigitImageError) and results[1].reason == "not an image file that Pillow can read"
    assert results[0] == results[2] == digits.predict_digits(model, "cpu", [good])[0]

