"""Where a training step's time goes: torch.profiler over a few dozen steps, grouped by kind of work.

    python -m bench.profile | tee bench/results/profile.txt
    ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.profile | tee bench/results/profile-avx2.txt

The steps are the recipe's own: utils.train over a utils.TensorLoader of random uint8 images,
augmented per batch as utils.RECIPE says, with the recipe's optimizer, layout and precision
(bfloat16 autocast where utils.precision picks it). Each operator's self CPU time is summed into
the groups below; "other" is everything else (element-wise products such as dropout's masks, sums,
the framework itself).
"""

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

import utils
from bench.common import ARCHITECTURES, machine
from model import RECIPES

# The first group whose word appears in an operator's name takes its time.
GROUPS = {
    "convolutions (forward and backward)": ("conv",),
    "BatchNorm": ("batch_norm",),
    "activation (SiLU)": ("silu",),
    "dropout": ("dropout", "bernoulli"),
    "augmentation (affine grid, grid_sample)": ("grid_sampler", "affine", "linspace"),
    "optimizer step": ("sgd", "_foreach"),
    "Linear layer and loss": ("addmm", "mm", "softmax", "nll_loss"),
    "batch gather and copies": ("index", "copy", "to_copy"),
}


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="OptimizedNet", choices=list(ARCHITECTURES))
    parser.add_argument("--steps", type=int, default=30, help="profiled steps, after 5 to warm up (default: 30)")
    args = parser.parse_args()

    device = torch.device("cpu")
    recipe = dict(utils.RECIPE, **RECIPES.get(args.model, {}))
    utils.set_seed(0)
    batch = recipe["batch_size"]
    images = torch.randint(0, 256, ((args.steps + 5) * batch, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (len(images),))
    augment = {key: recipe[key] for key in ("max_rotation", "max_shift", "scale_range")}
    model = ARCHITECTURES[args.model]().to(device)
    if recipe["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    optimizer, _ = utils.make_optimizer(model, recipe, steps_per_epoch=args.steps + 5)
    precision = utils.precision(device, recipe)
    bfloat16 = precision == "bfloat16"
    warm_up = utils.TensorLoader(images[: 5 * batch], labels[: 5 * batch], batch, shuffle=True, augment=augment)
    utils.train(model, device, warm_up, optimizer, bfloat16=bfloat16, verbose=False)
    loader = utils.TensorLoader(images[5 * batch:], labels[5 * batch:], batch, shuffle=True, augment=augment)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        utils.train(model, device, loader, optimizer, bfloat16=bfloat16, verbose=False)

    totals = collections.Counter()
    for event in profiler.key_averages():
        name = event.key.lower()
        group = next((g for g, words in GROUPS.items() if any(word in name for word in words)), "other")
        totals[group] += event.self_cpu_time_total
    total = sum(totals.values())
    print(machine())
    print(f"{args.model}, batch {batch}, {precision}, {torch.get_num_threads()} threads: "
          f"{total / 1000 / args.steps:.1f} ms of self CPU time per step (profiled, so a little slower than unprofiled)\n")
    print("| work | ms per step | share |")
    print("|---|---:|---:|")
    for group in [*GROUPS, "other"]:
        print(f"| {group} | {totals[group] / 1000 / args.steps:.1f} | {100 * totals[group] / total:.0f}% |")


if __name__ == "__main__":
    main()
