"""Fixtures shared by the tests: the repository's folder, running its scripts, and a tiny MNIST
(written by fake_mnist.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from fake_mnist import make_mnist_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root():
    """The repository's folder, where model.py and utils.py are."""
    return ROOT


@pytest.fixture(scope="session")
def run_python():
    """run_python(*arguments, cwd=ROOT, stderr_to_stdout=False): `python ARGUMENTS` with this
    interpreter, finished, its output as text (a CompletedProcess)."""

    def run(*arguments, cwd=ROOT, stderr_to_stdout=False, timeout=300):
        return subprocess.run([sys.executable, *map(str, arguments)], cwd=cwd, text=True, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stderr_to_stdout else subprocess.PIPE)

    return run


@pytest.fixture
def tiny_mnist(tmp_path):
    return make_mnist_folder(tmp_path / "data")


@pytest.fixture
def no_download(monkeypatch):
    """Make every download attempt fail the way it does offline."""
    from torchvision import datasets

    def refuse(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network is unreachable")

    monkeypatch.setattr(datasets.MNIST, "download", refuse)
