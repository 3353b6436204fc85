"""train.py from the command line: bad input gives one line on stderr, good input a JSON history."""

import json
import os
import subprocess
import sys

import pytest

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_train(*args):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "two"], "--epochs"),
        (["--batch-size", "-64"], "--batch-size"),
        (["--lr", "nan"], "--lr"),
        (["--history-out", "/no/such/folder/run.json"], "does not exist"),
        (["--save-model", "."], "is a folder"),
        (["--pipeline", "fancy"], "--pipeline"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, complaint):
    result = run_train(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and complaint in result.stderr


def test_corrupt_data_folder_gives_one_clear_line(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00" * 10)
    result = run_train("--data-dir", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(raw) in result.stderr


def test_missing_data_names_the_folder(tmp_path, no_download, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data-dir", str(tmp_path / "nothing-here")])
    assert exit_info.value.code != 0
    assert str(tmp_path / "nothing-here" / "MNIST" / "raw") in str(exit_info.value.code)


def test_a_short_run_writes_history_and_weights(tiny_mnist, tmp_path):
    history_file, weights_file = tmp_path / "run.json", tmp_path / "model.pt"
    result = run_train("--epochs", "2", "--seed", "3", "--data-dir", str(tiny_mnist), "--history-out", str(history_file), "--save-model", str(weights_file))
    assert result.returncode == 0, result.stderr
    assert "Test set: Average loss:" in result.stdout and "Train: Loss=" in result.stderr
    record = json.loads(history_file.read_text())
    assert record["seed"] == 3 and record["params"] < 20_000
    assert [epoch["epoch"] for epoch in record["epochs"]] == [1, 2]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds"):
        assert isinstance(record["epochs"][-1][key], float)
    import torch

    from model import OptimizedNet

    OptimizedNet().load_state_dict(torch.load(weights_file))
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary files left
