"""What bfloat16 autocast, channels-last, torch.compile and batch size cost or save in a training
run's time.

    python -m bench.tricks | tee bench/results/tricks.txt
    ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.tricks | tee bench/results/tricks-avx2.txt   # a CPU without AVX512

For each model, training steps (utils.train on one batch of random images, SGD) are timed for
each variant, all in this process. The variants take turns, a few steps each, round
after round, so that a machine whose speed drifts slows them all alike; a variant's step time is
the median over all its rounds. "s per run" = that step time x the steps of the model's recipe
(epochs x 60,000 / batch) + the variant's one-off cost: what its first steps took beyond ordinary
ones, which for torch.compile is the compilation (into a fresh cache folder, as on a first run).
Augmentation and evaluation are left out: they are the same for every variant. The reference is
float32; "bfloat16 autocast" is what utils.fit uses where utils.bfloat16_is_fast says so, and
under an ONEDNN_MAX_CPU_ISA cap below AVX512_CORE_BF16 it shows what emulated bfloat16 would cost.
What these tricks do to accuracy is measured by bench/frontier.py on the held-out split.
"""

import argparse
import logging
import os
import statistics
import tempfile
import time

import torch

import utils
from bench.common import machine, training_step
from model import MODELS, RECIPES

WARM_UP = 10  # steps before timing: oneDNN picks its kernels, torch.compile compiles
VARIANTS = {
    "float32, channels-last": dict(channels_last=True, compile=False, batch_size=256, bfloat16=False),
    "bfloat16 autocast": dict(channels_last=True, compile=False, batch_size=256, bfloat16=True),
    "default layout": dict(channels_last=False, compile=False, batch_size=256, bfloat16=False),
    "torch.compile": dict(channels_last=True, compile=True, batch_size=256, bfloat16=False),
    "batch 128": dict(channels_last=True, compile=False, batch_size=128, bfloat16=False),
    "batch 512": dict(channels_last=True, compile=False, batch_size=512, bfloat16=False),
}


def seconds_per_step(step, count):
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.tricks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["Net8k", "OptimizedNet"], choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=8, help="turns each variant takes (default: 8)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant per round (default: 8)")
    args = parser.parse_args()
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime is found" on CPU machines
    print(f"Machine: {machine()}, {torch.get_num_threads()} threads")
    for name in args.models:
        recipe = dict(utils.RECIPE, **RECIPES[name])
        with tempfile.TemporaryDirectory() as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # compile from scratch, as a first run would
            variants, warm_up = {}, {}
            for label, settings in VARIANTS.items():
                try:
                    step = training_step(name, **settings)
                    warm_up[label] = seconds_per_step(step, WARM_UP) * WARM_UP
                    variants[label] = step
                except Exception as error:  # torch.compile needs a working C++ compiler: say so and go on
                    print(f"{name}, {label}: failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            times = {label: [] for label in variants}
            for _ in range(args.rounds):
                for label, step in variants.items():
                    times[label].append(seconds_per_step(step, args.steps))
        print(f"\n{name}, {recipe['epochs']} epochs of 60,000 images; step times are medians of {args.rounds} rounds of {args.steps} steps")
        print("| variant | ms per step | batch | steps per run | one-off s | s per run (training steps) | vs recipe |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        reference = None
        for label, settings in VARIANTS.items():
            if label not in variants:
                continue
            seconds = statistics.median(times[label])
            one_off = max(0.0, warm_up[label] - WARM_UP * seconds)
            steps = recipe["epochs"] * -(-60_000 // settings["batch_size"])
            total = seconds * steps + one_off
            reference = reference or total
            print(f"| {label} | {1000 * seconds:.1f} | {settings['batch_size']} | {steps:,} | {one_off:.1f} | {total:.0f} | "
                  f"{total / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
