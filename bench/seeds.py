"""Train the default recipe from several seeds; print the final-epoch test accuracy of each.

    python bench/seeds.py --data-dir data | tee bench/results/seeds.txt     # seeds 1 to 10

Accuracy is the final epoch's on the 10,000 test images; "best" is shown only to expose how
much the final epoch gives away, and is never used to pick a model.
"""

import argparse
import statistics

from common import TARGET, machine, run, utils


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    args = parser.parse_args()

    recipe = utils.RECIPE
    print(f"Machine: {machine()}")
    print("Recipe: " + ", ".join(f"{key}={value}" for key, value in recipe.items()))
    print()
    print(f"| seed | first epoch >= {TARGET}% (s) | final accuracy | best accuracy | total seconds |")
    print("|-----:|---------------------------:|---------------:|--------------:|--------------:|")
    results = []
    for seed in args.seeds:
        result = run(recipe, seed, args.data_dir)
        results.append(result)
        first = "never" if result["first_epoch"] is None else f"{result['first_epoch']} ({result['first_seconds']:.1f})"
        print(f"| {seed} | {first} | {result['final']:.2f}% | {result['best']:.2f}% | {result['total_seconds']:.1f} |", flush=True)

    finals = [result["final"] for result in results]
    spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
    print()
    print(f"Final accuracy: mean {statistics.mean(finals):.3f}%, std {spread:.3f}, min {min(finals):.2f}%, max {max(finals):.2f}%")
    print(f"Seeds with final accuracy >= {TARGET}%: {sum(f >= TARGET for f in finals)}/{len(finals)}")
    print(f"Seconds per epoch: mean {statistics.mean(r['seconds_per_epoch'] for r in results):.2f}")


if __name__ == "__main__":
    main()
