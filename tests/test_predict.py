"""Your own digits: saving and loading models, preparing photos like MNIST, and predict.py.

The photos are drawn here with Pillow (a thick "1" or "7", dark on light paper), so no test needs
MNIST or a trained model: predict.py is checked for its output, not for the digits it reads.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import predict
import utils
from model import OptimizedNet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
@pytest.mark.parametrize("extension", ["png", "jpg"])
def test_a_photo_becomes_an_mnist_like_digit(tmp_path, mode, extension):
    picture = draw_digit("7", canvas=(500, 380), box=(300, 200, 150), paper=160, ink=60, mode=mode, noise=3)
    if extension == "jpg" and mode == "RGBA":
        picture = picture.convert("RGB")
    path = save(picture, tmp_path / f"seven.{extension}", **({"quality": 80} if extension == "jpg" else {}))
    height, width = check_mnist_like(utils.prepare_digit(path))
    assert height == 20 and 13 <= width <= 16  # the 7 is 0.7 as wide as tall, plus its stroke


def test_a_tall_thin_digit_keeps_its_aspect_ratio():
    height, width = check_mnist_like(utils.prepare_digit(draw_digit("1", box=(40, 30, 200), paper=230, ink=20)))
    assert height == 20 and width <= 12  # stretched to 20 x 20 it would be as wide as tall


def test_a_thin_pen_line_comes_out_at_full_strength():
    picture = Image.new("L", (400, 400), 235)
    ImageDraw.Draw(picture).line([(300, 40), (100, 360)], fill=30, width=3)  # shrunk 16x: a fifth of a pixel wide
    assert utils.prepare_digit(picture).max() == pytest.approx(FULL_INK, abs=1e-5)


def test_size_place_paper_and_format_do_not_matter(tmp_path):
    small = draw_digit("7", canvas=(60, 60), box=(10, 8, 40), paper=250, ink=0, mode="L")
    large = draw_digit("7", canvas=(900, 500), box=(620, 60, 360), paper=150, ink=70, mode="RGB", noise=4)
    prepared_small = ink_of(utils.prepare_digit(small))
    prepared_large = ink_of(utils.prepare_digit(save(large, tmp_path / "large.jpg", quality=75)))
    huge = draw_digit("7", canvas=(2600, 1400), box=(300, 500, 800), paper=200, ink=50, mode="RGB", noise=3)
    one = ink_of(utils.prepare_digit(draw_digit("1", box=(40, 30, 200))))
    assert np.abs(prepared_small - prepared_large).mean() < 0.03  # measured 0.011
    assert np.abs(prepared_small - ink_of(utils.prepare_digit(huge))).mean() < 0.03  # shrunk before it is read
    assert np.abs(prepared_small - one).mean() > 0.08  # the measure does tell a 7 from a 1 (0.105)


def test_the_top_of_a_seven_is_at_the_top(tmp_path):
    ink = ink_of(utils.prepare_digit(draw_digit("7")))
    rows = np.nonzero(ink.any(axis=1))[0]
    top_bar = ink[rows[0] : rows[0] + 3].sum()
    bottom = ink[rows[-1] - 2 : rows[-1] + 1].sum()
    assert top_bar > 3 * bottom  # bright ink where the dark bar was: inverted, not flipped


def test_exif_rotation_is_applied(tmp_path):
    upright = draw_digit("7", mode="L")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display", as phones write it
    path = save(upright.rotate(90, expand=True), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=90)
    expected = ink_of(utils.prepare_digit(upright))
    assert np.abs(ink_of(utils.prepare_digit(path)) - expected).mean() < 0.03
    assert np.abs(ink_of(utils.prepare_digit(upright.rotate(90, expand=True))) - expected).mean() > 0.08  # 0.14


def test_sixteen_bit_and_transparent_images(tmp_path):
    eight_bit = draw_digit("7", mode="L")
    expected = ink_of(utils.prepare_digit(eight_bit))
    sixteen_bit = Image.fromarray(np.asarray(eight_bit).astype(np.uint16) * 257)
    path = save(sixteen_bit, tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    assert np.abs(ink_of(utils.prepare_digit(path)) - expected).mean() < 0.02
    # Ink on a transparent sheet whose hidden colour is black: the paper must count as white.
    alpha = 255 - np.asarray(eight_bit)
    sheet = np.zeros(alpha.shape + (4,), dtype=np.uint8)
    sheet[..., 3] = np.where(alpha > 100, 255, 0)
    path = save(Image.fromarray(sheet), tmp_path / "sheet.png")
    check_mnist_like(utils.prepare_digit(path))
    # The same as a palette image whose transparent colour is black.
    palette = Image.frombytes("P", eight_bit.size, (alpha > 100).astype(np.uint8).tobytes())
    palette.putpalette([0, 0, 0, 30, 30, 30])
    path = save(palette, tmp_path / "palette.png", transparency=0)
    assert Image.open(path).mode == "P"
    check_mnist_like(utils.prepare_digit(path))


@pytest.mark.parametrize("picture", [Image.new("L", (200, 200), 200), draw_digit("7", ink=170, noise=3), Image.new("RGBA", (50, 50))])
def test_an_image_without_ink_is_refused(picture):
    with pytest.raises(utils.DigitImageError, match="no digit"):
        utils.prepare_digit(picture)


def test_unreadable_files_are_refused_with_their_name(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(os.urandom(300))
    with pytest.raises(utils.DigitImageError, match="not an image") as error:
        utils.prepare_digit(str(broken))
    assert str(broken) in str(error.value) and str(broken) not in error.value.reason
    truncated = tmp_path / "truncated.png"
    whole = open(save(draw_digit(noise=3), tmp_path / "whole.png"), "rb").read()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(utils.DigitImageError, match="cannot read"):
        utils.prepare_digit(truncated)
    with pytest.raises(utils.DigitImageError, match="no such file"):
        utils.prepare_digit(tmp_path / "missing.png")


def test_predict_digits_batches_and_keeps_the_model_mode():
    torch.manual_seed(0)
    model = OptimizedNet().train()
    images = [draw_digit(digit, box=(60 + 20 * i, 40, 100 + 10 * i)) for i, digit in enumerate("17171")]
    one_batch = utils.predict_digits(model, "cpu", images)
    assert model.training  # put back as it was
    in_twos = utils.predict_digits(model, "cpu", [utils.prepare_digit(image) for image in images], batch_size=2)
    assert [digit for digit, _ in in_twos] == [digit for digit, _ in one_batch]
    assert [p for _, p in in_twos] == pytest.approx([p for _, p in one_batch], rel=1e-5)
    model.eval()
    for (digit, probability), image in zip(one_batch, images):
        logits = model(utils.prepare_digit(image).unsqueeze(0))[0]
        assert digit == logits.argmax().item() and probability == pytest.approx(logits.softmax(0).max().item(), rel=1e-5)


def test_predict_digits_raises_on_an_unreadable_image_unless_told_to_skip(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    model, good = OptimizedNet().eval(), draw_digit("1")
    with pytest.raises(utils.DigitImageError, match="not an image file"):
        utils.predict_digits(model, "cpu", [good, broken])
    results = utils.predict_digits(model, "cpu", [good, broken, good], skip_unreadable=True)
    assert isinstance(results[1], utils.DigitImageError) and results[1].reason == "not an image file that Pillow can read"
    assert results[0] == results[2] == utils.predict_digits(model, "cpu", [good])[0]


# ----------------------------------------------------------------------------------------------
# Saving and loading models
# ----------------------------------------------------------------------------------------------


def trained_looking_model(seed=0):
    """OptimizedNet with random weights and BatchNorm statistics, so a lost tensor would show."""
    torch.manual_seed(seed)
    model = OptimizedNet()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def same_weights(first, second):
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_save_and_load_a_model(tmp_path):
    model = trained_looking_model()
    path = tmp_path / "digits.pt"
    utils.save_model(model.train(), path)
    assert os.listdir(tmp_path) == ["digits.pt"]  # no temporary file left
    record = torch.load(path, map_location="cpu", weights_only=True)
    assert record["class"] == "OptimizedNet"
    loaded = utils.load_model(path)
    assert isinstance(loaded, OptimizedNet) and not loaded.training
    assert same_weights(model, loaded) and next(loaded.parameters()).device.type == "cpu"


def test_a_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "digits.pt"
    path.write_bytes(b"the old model")

    def fail_halfway(record, file):
        open(file, "wb").write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        utils.save_model(OptimizedNet(), path)
    assert os.listdir(tmp_path) == ["digits.pt"] and path.read_bytes() == b"the old model"


def test_a_plain_state_dict_loads(tmp_path):
    model = trained_looking_model(1)
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)  # what train.py --save-model wrote
    loaded = utils.load_model(str(path), torch.device("cpu"))
    assert isinstance(loaded, OptimizedNet) and not loaded.training and same_weights(model, loaded)


def test_a_model_saved_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    import torch.serialization

    model = trained_looking_model(2)
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:  # write the file as a CUDA machine would: tensors tagged cuda:0
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(model.state_dict(), path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # the file does need mapping
    loaded = utils.load_model(path, "cpu")
    assert same_weights(model, loaded) and next(loaded.parameters()).device.type == "cpu"


def test_unusable_model_files_name_the_file(tmp_path):
    def saved(name, content):
        path = tmp_path / name
        torch.save(content, path)
        return path

    good = OptimizedNet().state_dict()
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(os.urandom(500))
    cases = {
        tmp_path / "missing.pt": "no such model file",
        random_bytes: "not a model file",
        saved("numbers.pt", {"a": 1}): "holds no model",
        saved("function.pt", {"class": "conv_block", "state_dict": good}): "no model class",
        saved("import.pt", {"class": "nn", "state_dict": good}): "no model class",
        saved("short.pt", {key: value for key, value in list(good.items())[1:]}): "do not fit OptimizedNet",
    }
    for path, complaint in cases.items():
        with pytest.raises(utils.ModelFileError, match=complaint) as error:
            utils.load_model(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------
# predict.py
# ----------------------------------------------------------------------------------------------

LINE = re.compile(r"^(.+): (\d) \(p=(0\.\d{3}|1\.000)\)$")


@pytest.fixture
def photos(tmp_path):
    """Two good photos, a broken file, a missing one and a blank page, in that order."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(os.urandom(1000))
    return [
        save(draw_digit("7", canvas=(300, 260), box=(40, 100, 120), mode="RGB"), tmp_path / "seven.jpg"),
        str(broken),
        save(draw_digit("1", canvas=(120, 200), box=(10, 20, 150), paper=220, mode="L"), tmp_path / "one.png"),
        str(tmp_path / "missing.png"),
        save(Image.new("L", (80, 80), 210), tmp_path / "blank.png"),
    ]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "digits.pt"
    utils.save_model(trained_looking_model(), path)
    return str(path)


def test_predict_prints_one_line_per_image_in_order(photos, model_file, capsys):
    status = predict.main(["--model", model_file, *photos])
    out, err = capsys.readouterr()
    assert status == 1
    predicted = [LINE.match(line) for line in out.splitlines()]
    assert [match.group(1) for match in predicted] == [photos[0], photos[2]]
    expected = utils.predict_digits(utils.load_model(model_file), "cpu", [photos[0], photos[2]])
    assert [int(match.group(2)) for match in predicted] == [digit for digit, _ in expected]
    assert err.splitlines() == [
        f"{photos[1]}: error: not an image file that Pillow can read",
        f"{photos[3]}: error: no such file",
        f"{photos[4]}: error: no digit found: the image is blank (all one shade)",
    ]
    assert predict.main(["--model", model_file, photos[2], photos[0]]) == 0
    assert [LINE.match(line).group(1) for line in capsys.readouterr().out.splitlines()] == [photos[2], photos[0]]


def run_predict(*args):
    return subprocess.run([sys.executable, "predict.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def test_predict_from_the_command_line(photos, model_file):
    result = run_predict("--model", model_file, *photos)
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stdout
    assert [line.split(": ")[0] for line in lines] == photos  # stdout and stderr together: in the order given
    assert [bool(LINE.match(line)) for line in lines] == [True, False, True, False, False]


def test_predict_without_a_usable_model(tmp_path, photos, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    for model in (broken, tmp_path / "none.pt"):
        assert predict.main(["--model", str(model), photos[0]]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith(f"predict.py: error: {model}: ")


def test_predict_help_and_usage_need_no_torch():
    code = "import sys, predict; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout.strip() == "False"
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(["--model", "digits.pt"])  # no image
    assert exit_info.value.code == 2
