"""Accuracy against size against time: train the models over seeds, tabulate and plot.

    python -m bench.frontier --split holdout --models Net8k --seeds 101 102 103    # choose here
    python -m bench.frontier --split test --seeds 1 2 3 4 5 6 7 8 9 10             # measure once, at the end
    python -m bench.frontier --split test --table-only                             # redraw table and plots

--split holdout trains on the first 50,000 training images and reports accuracy on the last
10,000 (choose architectures and hyperparameters here); --split test trains on all 60,000 and
reports accuracy on the 10,000 test images. Accuracy is always the FINAL epoch's, tested once per
image ("one pass") and, beside it, averaged over each image and its four 1-pixel shifts
("shifted"). Each run is appended as one JSON line to bench/results/frontier.SPLIT.jsonl; the
table (stdout) and plots (--plot-dir) are drawn from every record of that split, so runs made by
separate commands add up. A run records the precision it trained in (utils.precision: bfloat16
where the CPU computes it, float32 elsewhere or under ONEDNN_MAX_CPU_ISA=AVX2).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

import utils
from bench.common import ARCHITECTURES, TARGET, run_under_isa_cap, training_step
from bench.seed_models import REPORTED
from model import RECIPES, count_parameters

HOLDOUT = 10_000  # the last 10,000 training images, when --split holdout
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@torch.no_grad()
def count_macs(model, input_size=(1, 1, 28, 28)):
    """Multiply-adds for one image through the model's Conv2d and Linear layers (forward hooks).

    A convolution costs (output elements) x (input channels per group) x (kernel area); a Linear
    layer in_features x out_features. BatchNorm, ReLU, pooling and biases are not counted.
    """
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * (module.in_channels // module.groups) * kernel
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    model(torch.zeros(input_size))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total


def cpu_ms_per_step(name, batch_size, bfloat16, steps=20):
    """CPU time (ms) of one training step at `batch_size` on random images, one thread.

    Measured with time.process_time, so it counts this process's own CPU time and depends far
    less on other work sharing the machine than wall time does. Augmentation is not included.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    step = training_step(name, batch_size, bfloat16=bfloat16)
    times = []
    for count in range(steps + 3):
        start = time.process_time()
        step()
        if count >= 3:
            times.append(time.process_time() - start)
    torch.set_num_threads(threads)
    return 1000 * statistics.median(times)


def split_loaders(data_dir, split, recipe, device):
    """(train loader, evaluation loader) for the split: 'holdout' or 'test'."""
    train_set, test_set = utils.load_mnist_datasets(data_dir)
    images, labels = train_set.data.to(device), train_set.targets.to(device)
    if split == "holdout":
        train_images, train_labels = images[:-HOLDOUT], labels[:-HOLDOUT]
        eval_images, eval_labels = images[-HOLDOUT:], labels[-HOLDOUT:]
    else:
        train_images, train_labels = images, labels
        eval_images, eval_labels = test_set.data.to(device), test_set.targets.to(device)
    augment = dict(max_rotation=recipe["max_rotation"], max_shift=recipe["max_shift"], scale_range=recipe["scale_range"])
    train_loader = utils.TensorLoader(train_images, train_labels, recipe["batch_size"], shuffle=True, augment=augment)
    eval_loader = utils.TensorLoader(eval_images, eval_labels, recipe["test_batch_size"])
    return train_loader, eval_loader


def parse_overrides(pairs):
    """--set key=value ... -> dict, values read as JSON where they parse (numbers, lists)."""
    overrides = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        if isinstance(value, list):
            value = tuple(value)
        overrides[key] = value
    return overrides


def run_one(name, seed, split, data_dir, extra_overrides):
    device = utils.get_device()
    recipe = dict(utils.RECIPE, **{**RECIPES.get(name, {}), **extra_overrides})  # --set wins over the registry
    unknown = set(recipe) - set(utils.RECIPE)
    if unknown:
        raise ValueError(f"Recipe keys utils.fit does not know: {sorted(unknown)}")
    utils.set_seed(seed)
    train_loader, eval_loader = split_loaders(data_dir, split, recipe, device)
    model = ARCHITECTURES[name]()

    def echo(entry):  # one timestamped line per epoch on stderr, so a long run shows progress
        print(f"  {time.strftime('%H:%M:%S')} {name} seed {seed} epoch {entry['epoch']}: "
              f"{entry['test_acc']:.2f}%", file=sys.stderr, flush=True)

    history = utils.fit(model, device, train_loader, eval_loader, recipe, verbose=False, on_epoch_end=echo)
    # The final model tested both ways: fit has tested it the recipe's way already.
    final_by_shifts = {recipe["test_shifts"]: history[-1]["test_acc"]}
    for shifts in (0, 1):
        if shifts not in final_by_shifts:
            final_by_shifts[shifts] = utils.test(model, device, eval_loader, verbose=False, shifts=shifts)[1]
    return dict(
        model=name,
        split=split,
        seed=seed,
        params=count_parameters(model),
        macs=count_macs(model),
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        precision=utils.precision(device, recipe),
        isa_cap=os.environ.get("ONEDNN_MAX_CPU_ISA"),  # e.g. AVX2: a float32 run as on a laptop without AVX512
        overrides={**RECIPES.get(name, {}), **extra_overrides},
        final_plain=final_by_shifts[0],  # one pass per image
        final_tta=final_by_shifts[1],  # averaged over each image and its four 1-pixel shifts
        curve=[entry["test_acc"] for entry in history],
        seconds=sum(entry["seconds"] for entry in history),
        threads=torch.get_num_threads(),
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def load_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def summarise(records):
    """One row per (model, recipe, precision): the seeds' final accuracies both ways, and seconds.

    A row is marked registry when its recipe is model.RECIPES' current one for that model.
    """
    groups = {}
    for record in records:
        precision = record["precision"] + (f" ({record['isa_cap']} cap)" if record.get("isa_cap") else "")
        key = (record["model"], json.dumps(record["overrides"], sort_keys=True), precision)
        groups.setdefault(key, []).append(record)
    rows = []
    for (name, overrides, precision), group in groups.items():
        by_seed = {r["seed"]: r for r in group}  # a seed run twice counts once (the later run)
        group = [by_seed[s] for s in sorted(by_seed)]
        registry = overrides == json.dumps(RECIPES.get(name, {}), sort_keys=True)
        variant = " ".join(f"{k}={v}" for k, v in sorted(json.loads(overrides).items())) or "default recipe"
        row = dict(model=name, variant=variant + (" (registry)" if registry else ""), registry=registry,
                   precision=precision, isa_cap=group[0].get("isa_cap"), seeds=[r["seed"] for r in group],
                   wall_seconds=statistics.mean(r["seconds"] for r in group),
                   **{key: group[0][key] for key in ("params", "macs", "epochs", "batch_size")})
        for way in ("plain", "tta"):
            finals = [r[f"final_{way}"] for r in group]
            row[way] = dict(finals=finals, mean=statistics.mean(finals), min=min(finals), max=max(finals),
                            hits=sum(f >= TARGET for f in finals))
        rows.append(row)
    rows.sort(key=lambda row: (row["params"], row["variant"], row["precision"]))
    return rows


def print_table(rows, split):
    where = "last 10,000 training images (trained on the first 50,000)" if split == "holdout" else "10,000 test images (trained on all 60,000)"
    print(f"Final-epoch accuracy (%) on the {where}.")
    print()
    print(f"| model | recipe | precision | parameters | MACs/image | epochs | seeds | one pass: mean | min | max | >= {TARGET} "
          f"| shifted: mean | min | >= {TARGET} | CPU ms/step | CPU s/run | wall s/run |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        plain, tta, n = r["plain"], r["tta"], len(r["seeds"])
        print(f"| {r['model']} | {r['variant']} | {r['precision']} | {r['params']:,} | {r['macs']:,} | {r['epochs']} | {n} | "
              f"**{plain['mean']:.3f}** | {plain['min']:.2f} | {plain['max']:.2f} | {plain['hits']}/{n} | "
              f"{tta['mean']:.3f} | {tta['min']:.2f} | {tta['hits']}/{n} | "
              f"{r['cpu_ms_step']:.1f} | {r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    print()
    print("one pass: each image tested once; shifted: each image's softmax averaged with its four 1-pixel shifts")
    print("(test-time augmentation). CPU ms/step: median CPU time of one training step at the row's batch size")
    print("and precision, one thread, measured when the table is drawn. CPU s/run = CPU ms/step x steps per run")
    print("(training steps only): the comparable time, used by the seconds plot. wall s/run: each run's measured")
    print("wall time (training and per-epoch evaluation) on a machine that may have been shared; not comparable.")
    print()
    print("Per seed, final epoch, one pass / shifted:")
    print()
    for r in rows:
        runs = ", ".join(f"{s}: {p:.2f}/{t:.2f}" for s, p, t in zip(r["seeds"], r["plain"]["finals"], r["tta"]["finals"]))
        print(f"- {r['model']}, {r['variant']}, {r['precision']}: {runs}")


def plot(rows, split, plot_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["registry"]] or rows
    label = "test" if split == "test" else "held-out"
    for x_key, x_label, filename in (
        ("params", "parameters", f"frontier.{split}.params.png"),
        ("cpu_seconds", "CPU seconds per training run (one thread, training steps only)", f"frontier.{split}.seconds.png"),
    ):
        figure, axis = plt.subplots(figsize=(8, 6))
        for r in rows:
            x, plain = r[x_key], r["plain"]
            axis.errorbar([x], [plain["mean"]], yerr=[[plain["mean"] - plain["min"]], [plain["max"] - plain["mean"]]],
                          fmt="o", capsize=4,
                          label=f"{r['model']} ({r['params']:,} params, {r['epochs']} ep, {len(r['seeds'])} seeds, {r['precision']})")
            axis.scatter([x] * len(plain["finals"]), plain["finals"], s=8, color="gray", alpha=0.5, zorder=3)
        for (name, reported), marker in zip(REPORTED.items(), ("*", "X")):  # the seed models' own single runs
            x = next((r[x_key] for r in rows if r["model"] == name), None)
            if x is not None and split == "test":
                axis.scatter([x], [reported["accuracy"]], marker=marker, s=120, color="black", zorder=4,
                             label=f"{name}: {reported['label']} (its authors' recipe)")
        axis.axhline(TARGET, color="red", linestyle="--", linewidth=1, label=f"{TARGET}%")
        if x_key == "params":
            axis.set_xscale("log")
            ticks = [3000, 4000, 6000, 8000, 12000, 20000]
            axis.set_xticks(ticks, [f"{t:,}" for t in ticks])
            axis.minorticks_off()
        axis.set(xlabel=x_label, ylabel=f"final-epoch {label} accuracy, one pass (%)",
                 title=f"MNIST: final {label} accuracy, each image tested once (mean, min-max bar, each seed gray)")
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        figure.tight_layout()
        os.makedirs(plot_dir, exist_ok=True)
        figure.savefig(os.path.join(plot_dir, filename), dpi=110, bbox_inches="tight")  # the legend sits below the axes
        plt.close(figure)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.frontier", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES), metavar="NAME",
                        help=f"models to train (default: all of {', '.join(ARCHITECTURES)}; the seed models with the default recipe)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--split", choices=("holdout", "test"), default="holdout")
    parser.add_argument("--plot-dir", default=RESULTS)
    parser.add_argument("--records", help="JSON-lines file of runs (default: PLOT_DIR/frontier.SPLIT.jsonl)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides on top of the model's RECIPES entry (experiments only)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default, so that two runs can share a 2-core machine")
    parser.add_argument("--table-only", action="store_true", help="redraw table and plots from the records, train nothing")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    records_path = args.records or os.path.join(args.plot_dir, f"frontier.{args.split}.jsonl")
    if not args.table_only:
        overrides = parse_overrides(args.set)
        for name in args.models:
            for seed in args.seeds:
                record = run_one(name, seed, args.split, args.data_dir, overrides)
                os.makedirs(os.path.dirname(os.path.abspath(records_path)), exist_ok=True)
                with open(records_path, "a") as file:
                    file.write(json.dumps(record) + "\n")
                print(f"{name} seed {seed}: final {record['final_plain']:.2f}% one pass, {record['final_tta']:.2f}% shifted, "
                      f"in {record['seconds']:.0f} s", file=sys.stderr, flush=True)
    rows = summarise(load_records(records_path))
    train_size = 60_000 if args.split == "test" else 60_000 - HOLDOUT
    step_ms = {}
    for r in rows:
        key = (r["model"], r["batch_size"], r["precision"])
        if key not in step_ms:
            bfloat16 = r["precision"].startswith("bfloat16")
            if r["isa_cap"] == os.environ.get("ONEDNN_MAX_CPU_ISA"):
                step_ms[key] = cpu_ms_per_step(r["model"], r["batch_size"], bfloat16)
            else:  # measured in a child process under that row's cap
                code = f"from bench.frontier import cpu_ms_per_step; print(cpu_ms_per_step({r['model']!r}, {r['batch_size']}, {bfloat16}))"
                step_ms[key] = float(run_under_isa_cap(r["isa_cap"], "-c", code))
        r["cpu_ms_step"] = step_ms[key]
        r["cpu_seconds"] = r["cpu_ms_step"] * (-(-train_size // r["batch_size"])) * r["epochs"] / 1000
    print_table(rows, args.split)
    if rows:
        plot(rows, args.split, args.plot_dir)


if __name__ == "__main__":
    main()
