"""predict.py from the command line: one line per image, in order, errors in their place."""

import os
import re

import pytest
from PIL import Image

import digits
import predict
from model import load_model, save_model
from photos import draw_digit, save
from test_model import trained_looking_model

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
    save_model(trained_looking_model(), path)
    return str(path)


def test_predict_prints_one_line_per_image_in_order(photos, model_file, capsys):
    status = predict.main(["--model", model_file, *photos])
    out, err = capsys.readouterr()
    assert status == 1
    predicted = [LINE.match(line) for line in out.splitlines()]
    assert [match.group(1) for match in predicted] == [photos[0], photos[2]]
    expected = digits.predict_digits(load_model(model_file), "cpu", [photos[0], photos[2]])
    assert [int(match.group(2)) for match in predicted] == [digit for digit, _ in expected]
    assert err.splitlines() == [
        f"{photos[1]}: error: not an image file that Pillow can read",
        f"{photos[3]}: error: no such file",
        f"{photos[4]}: error: no digit found: the image is blank (all one shade)",
    ]
    assert predict.main(["--model", model_file, photos[2], photos[0]]) == 0
    assert [LINE.match(line).group(1) for line in capsys.readouterr().out.splitlines()] == [photos[2], photos[0]]


def test_predict_from_the_command_line(photos, model_file, run_python):
    result = run_python("predict.py", "--model", model_file, *photos, stderr_to_stdout=True)
    lines = result.stdout.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stdout
    assert [line.split(": ")[0] for line in lines] == photos  # stdout and stderr together: in the order given
    assert [bool(LINE.match(line)) for line in lines] == [True, False, True, False, False]


def test_predict_hides_only_torchs_own_typed_storage_warning():
    # torch 2.1's torch.load(weights_only=True) warns "TypedStorage is deprecated" from inside torch:
    # predict.py hides that (test_predict_from_the_command_line sees no such line on torch 2.1), and
    # the filter is narrow enough to leave the same message from the project's code and any other.
    import warnings

    import cli

    message = "TypedStorage is deprecated. It will be removed in the future and UntypedStorage will be the only storage class."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli.hide_torch_storage_warning()
        warnings.warn_explicit(message, UserWarning, "torch/_utils.py", 831, module="torch._utils")
        warnings.warn_explicit(message, UserWarning, "utils.py", 1, module="utils")
        warnings.warn_explicit(message, DeprecationWarning, "torch/storage.py", 1, module="torch.storage")
        warnings.warn_explicit("Something else", UserWarning, "torch/serialization.py", 1, module="torch.serialization")
    assert [(warning.filename, warning.category) for warning in caught] == [
        ("utils.py", UserWarning), ("torch/storage.py", DeprecationWarning), ("torch/serialization.py", UserWarning)]


def test_predict_without_a_usable_model(tmp_path, photos, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    for model in (broken, tmp_path / "none.pt"):
        assert predict.main(["--model", str(model), photos[0]]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith(f"predict.py: error: {model}: ")


def test_predict_help_and_usage_need_no_torch(run_python):
    assert run_python("-c", "import sys, predict; print('torch' in sys.modules)").stdout.strip() == "False"
    with pytest.raises(SystemExit) as exit_info:
        predict.parse_args(["--model", "digits.pt"])  # no image
    assert exit_info.value.code == 2
