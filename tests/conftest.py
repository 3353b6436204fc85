"""Fixtures shared by the tests; the helpers they use live in fake_mnist.py."""

import pytest

from fake_mnist import make_mnist_folder


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
