"""Time to 99.4% test accuracy: the project's pipeline against the conventional one, same model.

    python bench/speed.py --data-dir data | tee bench/results/speed.txt

Both runs train OptimizedNet from the same seed, one after the other in this process, and time
each epoch from its first batch to the end of its test pass.
  conventional: torchvision.datasets.MNIST, per-image PIL RandomAffine and ToTensor in a DataLoader
                with worker processes, batch 64, SGD lr 0.01 momentum 0.9, StepLR (x0.1 every 6
                epochs), default memory layout, float32.
  project:      utils.RECIPE: uint8 tensors in memory augmented per batch (affine grid), batch 256,
                OneCycle, channels-last, bfloat16 autocast where the hardware computes it fast.
"""

import argparse

from common import TARGET, machine, run, utils

CONVENTIONAL = dict(
    utils.RECIPE,
    pipeline="torchvision",
    batch_size=64,
    schedule="step",
    lr=0.01,
    step_size=6,
    nesterov=False,
    weight_decay=0.0,
    channels_last=False,
    bfloat16=False,
    epochs=12,
)


def describe(name, result):
    first = f"{result['first_seconds']:.1f} s (epoch {result['first_epoch']})" if result["first_epoch"] else "not reached"
    return f"| {name} | {result['seconds_per_epoch']:.2f} | {first} | {result['final']:.2f}% | {len(result['history'])} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    args = parser.parse_args()

    print(f"Machine: {machine()}, seed {args.seed}")
    results = {}
    for name, recipe in (("conventional", CONVENTIONAL), ("project", utils.RECIPE)):
        results[name] = run(recipe, args.seed, args.data_dir)
        print(f"{name}: {[round(entry['test_acc'], 2) for entry in results[name]['history']]}", flush=True)

    print()
    print(f"| pipeline | seconds per epoch | time to first >= {TARGET}% | final accuracy | epochs |")
    print("|---|---:|---:|---:|---:|")
    for name, result in results.items():
        print(describe(name, result))
    conventional, project = results["conventional"], results["project"]
    print()
    print(f"Seconds per epoch: conventional / project = {conventional['seconds_per_epoch'] / project['seconds_per_epoch']:.2f}x")
    if project["first_seconds"] is None:
        print(f"The project's pipeline did not reach {TARGET}%.")
    elif conventional["first_seconds"] is None:
        bound = conventional["total_seconds"] / project["first_seconds"]
        print(f"Time to {TARGET}%: the conventional pipeline did not reach it in {conventional['total_seconds']:.0f} s, "
              f"so the project's is more than {bound:.2f}x sooner")
    else:
        print(f"Time to {TARGET}%: conventional / project = {conventional['first_seconds'] / project['first_seconds']:.2f}x sooner")


if __name__ == "__main__":
    main()
