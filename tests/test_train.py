"""train.py from the command line: bad input gives one line on stderr, good input a JSON history."""

import json
import os
import re
import subprocess
import sys

import pytest

import train
from model import OptimizedNet, load_model

OWN_LINES = re.compile(
    r"\w+: \d+ parameters, device \w+, torch \S+, seed \d+, training in (bfloat16 autocast|float32)"
    r"|Recipe: .*|Epoch \d+/\d+  lr=\d\.\d{5}|Test set: Average loss: .*|Final test accuracy .*")


def assert_only_its_own_lines(result):
    """Nothing from a library among train.py's lines: no warning, on any supported torch."""
    assert [line for line in result.stdout.splitlines() if not OWN_LINES.fullmatch(line)] == []
    progress = [part for part in re.split(r"[\r\n]", result.stderr) if part.strip()]  # tqdm redraws with \r
    assert progress and [part for part in progress if not re.match(r"Epoch \d+ Train: ", part)] == [], result.stderr


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
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--model", "NoSuchNet"], "--model"),
    ],
)
def test_bad_arguments_give_one_clear_line(run_python, args, complaint):
    result = run_python("train.py", *args)
    assert result.returncode == 2  # argparse's usage-error status, as everywhere in the project
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and complaint in result.stderr


def test_corrupt_data_folder_gives_one_clear_line(tmp_path, run_python):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00" * 10)
    result = run_python("train.py", "--data-dir", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(raw) in result.stderr


def test_missing_data_names_the_folder(tmp_path, no_download, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data-dir", str(tmp_path / "nothing-here")])
    assert exit_info.value.code != 0
    assert str(tmp_path / "nothing-here" / "MNIST" / "raw") in str(exit_info.value.code)


def test_a_short_run_writes_history_and_weights(tiny_mnist, tmp_path, run_python):
    history_file, weights_file = tmp_path / "run.json", tmp_path / "model.pt"
    result = run_python("train.py", "--epochs", "2", "--seed", "3", "--data-dir", str(tiny_mnist), "--history-out", str(history_file), "--save-model", str(weights_file))
    assert result.returncode == 0, result.stderr
    assert "Test set: Average loss:" in result.stdout and "Train: Loss=" in result.stderr
    record = json.loads(history_file.read_text())
    assert record["seed"] == 3 and record["params"] < 20_000
    assert [epoch["epoch"] for epoch in record["epochs"]] == [1, 2]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds"):
        assert isinstance(record["epochs"][-1][key], float)
    OptimizedNet().load_state_dict(load_model(str(weights_file)).state_dict())
    assert "after 2 epochs," in result.stdout
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary files left
    assert_only_its_own_lines(result)


def test_the_torchvision_pipeline_prints_only_its_own_lines(tiny_mnist, run_python):
    # torchvision.datasets.MNIST, PIL transforms and DataLoader workers: more library code to hear from.
    result = run_python("train.py", "--epochs", "1", "--pipeline", "torchvision", "--data-dir", tiny_mnist)
    assert result.returncode == 0, result.stderr
    assert_only_its_own_lines(result)


def test_history_states_precision_device_and_torch(tiny_mnist, tmp_path):
    import torch

    history_file = tmp_path / "run.json"
    train.main(["--epochs", "1", "--float32", "--data-dir", str(tiny_mnist), "--history-out", str(history_file)])
    record = json.loads(history_file.read_text())
    assert record["precision"] == "float32" and record["recipe"]["bfloat16"] is False
    assert record["device"] == "cpu" and record["torch"] == torch.__version__ and record["model"] == "OptimizedNet"
    assert record["interrupted"] is False and len(record["epochs"]) == 1


def test_one_epoch_is_singular(tiny_mnist, capsys):
    train.main(["--epochs", "1", "--data-dir", str(tiny_mnist)])
    assert "after 1 epoch," in capsys.readouterr().out


def test_the_seed_decides_the_run(tiny_mnist, tmp_path):
    import torch

    def weights(seed, name):
        path = tmp_path / name
        train.main(["--epochs", "1", "--batch-size", "128", "--seed", str(seed), "--data-dir", str(tiny_mnist), "--save-model", str(path)])
        return torch.cat([value.flatten().float() for value in load_model(str(path)).state_dict().values()])

    first, again, other = weights(5, "a.pt"), weights(5, "b.pt"), weights(6, "c.pt")
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("name", list(__import__("model").MODELS))
def test_each_model_trains_for_one_batch(tiny_mnist, tmp_path, name):
    history_file = tmp_path / "run.json"
    # 512 training images in one batch of 512: one step of the model's own recipe.
    train.main(["--model", name, "--epochs", "1", "--batch-size", "512", "--data-dir", str(tiny_mnist), "--history-out", str(history_file)])
    record = json.loads(history_file.read_text())
    assert record["model"] == name and len(record["epochs"]) == 1


def test_help_lists_the_models_with_their_sizes(run_python):
    result = run_python("train.py", "--help")
    assert result.returncode == 0 and "OptimizedNet (19,018 parameters)" in " ".join(result.stdout.split())


def test_ctrl_c_exits_130_and_keeps_the_completed_epochs(tiny_mnist, tmp_path, root):
    import signal
    import time

    history_file, weights_file = tmp_path / "run.json", tmp_path / "model.pt"
    process = subprocess.Popen(
        [sys.executable, "-u", "train.py", "--epochs", "500", "--batch-size", "64", "--data-dir", str(tiny_mnist),
         "--history-out", str(history_file), "--save-model", str(weights_file)],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    completed, deadline = 0, time.monotonic() + 240
    # The third epoch's test line comes after the second epoch was recorded: two are complete.
    while completed < 3 and time.monotonic() < deadline:
        completed += process.stdout.readline().startswith("Test set:")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("train.py: interrupted after ")
    record = json.loads(history_file.read_text())
    assert record["interrupted"] is True and len(record["epochs"]) >= 2
    assert [entry["epoch"] for entry in record["epochs"]] == list(range(1, len(record["epochs"]) + 1))
    load_model(str(weights_file))  # the weights after the last completed epoch
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]
