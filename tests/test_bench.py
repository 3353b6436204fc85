"""bench/: each benchmark runs as `python -m bench.NAME` from the repository's folder, and what the
benchmarks compute besides timings is right."""

import pytest

from bench.frontier import count_macs, summarise
from model import OptimizedNet


def test_frontier_counts_multiply_adds_per_image():
    # OptimizedNet's layers added up by hand: conv1 14*14*16*9 + conv2 12*12*16*16*9 + conv3
    # 10*10*32*16*9 + transition 10*10*16*32 + conv4 8*8*16*16*9 + conv5 6*6*24*16*9 + conv6
    # 4*4*24*24*9 + fc 24*10.
    assert count_macs(OptimizedNet()) == 1_227_056


@pytest.mark.parametrize("name", ["frontier", "own_digits", "profile", "speed", "tricks"])
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


def test_frontier_keeps_runs_under_an_isa_cap_in_their_own_row():
    # A float32 run under ONEDNN_MAX_CPU_ISA=AVX2 (a laptop's CPU) and one on the full CPU are two
    # different measurements: one row each, the capped one labelled, never averaged together.
    run = dict(model="Net4k", overrides={}, seed=1, params=3_666, macs=187_824, epochs=19, batch_size=256,
               precision="float32", final_plain=99.3, final_tta=99.4, seconds=60.0)
    rows = summarise([run, dict(run, isa_cap="AVX2", final_plain=99.1), dict(run, seed=2, final_plain=99.5)])
    by_precision = {row["precision"]: row["plain"]["finals"] for row in rows}
    assert by_precision == {"float32": [99.3, 99.5], "float32 (AVX2 cap)": [99.1]}
