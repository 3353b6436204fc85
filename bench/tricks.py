"""What channels-last, torch.compile and batch size cost or save in a training run's time.

    python bench/tricks.py --models Net8k OptimizedNet | tee bench/results/tricks.txt

For each model, one float32 training step (utils.train on one batch of random images, SGD) is
timed for each variant, all in this process, one after the other, so the ratios compare like
with like. "s per run" = median step time x the steps of that model's recipe (epochs x 60,000 /
batch) + the variant's one-off cost: torch.compile's first calls, which compile the model, are
counted there, as they would be in a real run. Augmentation and evaluation are left out: they
are the same for every variant. What these tricks do to accuracy (label smoothing, EMA of weights,
test-time augmentation, batch size) is measured by bench/frontier.py on the held-out split.
"""

import argparse
import statistics
import time

import torch

from common import machine, utils
from model import MODELS, RECIPES

VARIANTS = {
    "channels-last (recipe)": dict(channels_last=True, compile=False, batch_size=256),
    "default layout": dict(channels_last=False, compile=False, batch_size=256),
    "channels-last + torch.compile": dict(channels_last=True, compile=True, batch_size=256),
    "batch 128": dict(channels_last=True, compile=False, batch_size=128),
    "batch 512": dict(channels_last=True, compile=False, batch_size=512),
}


def time_steps(name, variant, steps):
    """(median seconds per step, one-off seconds of the first calls beyond that) for one variant."""
    torch.manual_seed(0)
    layout = torch.channels_last if variant["channels_last"] else torch.contiguous_format
    model = MODELS[name]().to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if variant["compile"]:
        model = torch.compile(model)
    batch = [(torch.randn(variant["batch_size"], 1, 28, 28).to(memory_format=layout),
              torch.randint(0, 10, (variant["batch_size"],)))]
    first_calls, times = 0.0, []
    for step in range(steps + 3):
        start = time.perf_counter()
        utils.train(model, torch.device("cpu"), batch, optimizer, verbose=False)
        elapsed = time.perf_counter() - start
        if step < 3:  # warm-up: oneDNN picks kernels, torch.compile compiles (train mode, then again if it recompiles)
            first_calls += elapsed
        else:
            times.append(elapsed)
    median = statistics.median(times)
    return median, max(0.0, first_calls - 3 * median)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["Net8k", "OptimizedNet"], choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant, after 3 warm-up steps")
    args = parser.parse_args()
    print(f"Machine: {machine()}, {torch.get_num_threads()} threads, float32")
    for name in args.models:
        recipe = dict(utils.RECIPE, **RECIPES[name])
        print(f"\n{name}, {recipe['epochs']} epochs of 60,000 images")
        print("| variant | ms per step | batch | steps per run | one-off s | s per run (training steps) | vs recipe |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        reference = None
        for label, variant in VARIANTS.items():
            try:
                seconds, one_off = time_steps(name, variant, args.steps)
            except Exception as error:  # torch.compile needs a working C++ compiler; say so and go on
                print(f"| {label} | failed: {type(error).__name__}: {str(error).splitlines()[0][:120]} | | | | | |")
                continue
            steps = recipe["epochs"] * -(-60_000 // variant["batch_size"])
            total = seconds * steps + one_off
            reference = reference or total
            print(f"| {label} | {1000 * seconds:.1f} | {variant['batch_size']} | {steps:,} | {one_off:.1f} | {total:.0f} | "
                  f"{total / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
