"""What the benchmarks share: the machine's description and one seeded training run, summarised."""

import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import utils  # noqa: E402
from model import OptimizedNet  # noqa: E402

TARGET = 99.4


def machine():
    device = utils.get_device()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device {device}, fast bfloat16: {utils.bfloat16_is_fast(device)}, "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}"
    )


def run(recipe, seed, data_dir, verbose=False):
    """Train OptimizedNet with `recipe` from `seed`; return a summary of the history.

    verbose: show the progress bars and per-epoch lines (kept out of the benchmark's own output).
    """
    device = utils.get_device()
    utils.set_seed(seed)
    train_loader, test_loader = utils.get_data_loaders(data_dir, device, recipe)
    history = utils.fit(OptimizedNet(), device, train_loader, test_loader, recipe, verbose=verbose)
    elapsed, first_epoch, first_seconds = 0.0, None, None
    for entry in history:
        elapsed += entry["seconds"]
        if first_epoch is None and entry["test_acc"] >= TARGET:
            first_epoch, first_seconds = entry["epoch"], elapsed
    return dict(
        seed=seed,
        history=history,
        first_epoch=first_epoch,
        first_seconds=first_seconds,
        final=history[-1]["test_acc"],
        best=max(entry["test_acc"] for entry in history),
        total_seconds=elapsed,
        seconds_per_epoch=elapsed / len(history),
    )
