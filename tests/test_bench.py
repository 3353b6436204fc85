"""bench/: each benchmark runs as `python -m bench.NAME` from the repository's folder, and what the
benchmarks compute besides timings is right."""

import pytest

from bench.frontier import count_macs
from model import OptimizedNet


def test_frontier_counts_multiply_adds_per_image():
    # OptimizedNet's layers added up by hand: conv1 14*14*16*9 + conv2 12*12*16*16*9 + conv3
    # 10*10*32*16*9 + transition 10*10*16*32 + conv4 8*8*16*16*9 + conv5 6*6*24*16*9 + conv6
    # 4*4*24*24*9 + fc 24*10.
    assert count_macs(OptimizedNet()) == 1_227_056


@pytest.mark.parametrize("name", ["frontier", "own_digits", "speed", "tricks"])
def test_each_benchmark_runs_as_a_module(run_python, name):
    result = run_python("-m", f"bench.{name}", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m bench.{name} ")


@pytest.mark.parametrize("name, parameters", [("SeedNetA", 18_594), ("SeedNetB", 17_882)])
def test_the_seed_models_have_their_published_parameter_counts(name, parameters):
    import torch

    from bench.seed_models import SEED_MODELS
    from model import count_parameters

    model = SEED_MODELS[name]()
    assert count_parameters(model) == parameters
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
