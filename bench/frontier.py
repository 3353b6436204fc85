"""Accuracy against size against time: train model.py's family over seeds, tabulate and plot.

    python bench/frontier.py --data-dir data --split holdout --models Net8k --seeds 1 2
    python bench/frontier.py --data-dir data --split test --models Net8k Net6k Net4k --seeds 1 2 3 4 5 6 7 8 9 10

--split holdout trains on the first 50,000 training images and reports accuracy on the last
10,000 (choose architectures and hyperparameters here); --split test trains on all 60,000 and
reports accuracy on the 10,000 test images (measure once, at the end). Accuracy is always the
FINAL epoch's. Each run is appended as one JSON line to bench/results/frontier.SPLIT.jsonl, and
the table (stdout) and plots (--plot-dir) are drawn from every record of that split, so runs made
by separate commands add up. --table-only redraws them without training.

Seconds are wall time on whatever machine ran them (training plus the per-epoch evaluation); on a
shared machine they are only indicative.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import utils  # noqa: E402
from model import MODELS, RECIPES  # noqa: E402

TARGET = 99.4
HOLDOUT = 10_000  # the last 10,000 training images, when --split holdout

# Reference points from the issue: single runs reported elsewhere, never trained here.
REFERENCES = [
    dict(label="seed model A: 18,594 params, 99.58% after 20 epochs", params=18_594, accuracy=99.58),
    dict(label="seed model B: 17,882 params, 99.49% peak epoch", params=17_882, accuracy=99.49),
]


def seeds_reference(path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "seeds.txt")):
    """OptimizedNet with the default recipe, 10 seeds on the test set, as bench/seeds.py recorded it."""
    if not os.path.exists(path):
        return None
    finals, seconds = [], []
    with open(path) as file:
        for line in file:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0].isdigit():
                finals.append(float(cells[2].rstrip("%")))
                seconds.append(float(cells[4]))
    if not finals:
        return None
    from model import OptimizedNet

    return dict(
        model="OptimizedNet", variant="default recipe, bench/results/seeds.txt", registry=True, params=count_parameters(OptimizedNet()),
        macs=count_macs(OptimizedNet()), epochs=8, seeds=list(range(1, len(finals) + 1)), finals=finals,
        mean=statistics.mean(finals), min=min(finals), max=max(finals), hits=sum(f >= TARGET for f in finals),
        seconds=statistics.mean(seconds),
    )


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def training_step(name, batch_size, channels_last=True, compile=False):
    """A function that runs one float32 training step of MODELS[name] on one fixed batch of random
    images (utils.train, SGD): what the timings here and in bench/tricks.py measure."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = MODELS[name]().to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compile:
        model = torch.compile(model)
    batch = [(torch.randn(batch_size, 1, 28, 28).to(memory_format=layout), torch.randint(0, 10, (batch_size,)))]
    return lambda: utils.train(model, torch.device("cpu"), batch, optimizer, verbose=False)


def cpu_ms_per_step(name, batch_size=256, steps=20):
    """CPU time (ms) of one float32 training step at `batch_size` on random images, one thread.

    Measured with time.process_time, so it counts this process's own CPU time and depends far
    less on other work sharing the machine than wall time does. Augmentation is not included.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    step = training_step(name, batch_size)
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


def run_one(name, seed, split, data_dir, extra_overrides, model_args):
    device = utils.get_device()
    recipe = dict(utils.RECIPE, **{**RECIPES[name], **extra_overrides})  # --set wins over the registry
    unknown = set(recipe) - set(utils.RECIPE)
    if unknown:
        raise ValueError(f"Recipe keys utils.fit does not know: {sorted(unknown)}")
    utils.set_seed(seed)
    train_loader, eval_loader = split_loaders(data_dir, split, recipe, device)
    model = MODELS[name](**model_args)
    params, macs = count_parameters(model), count_macs(model)

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
        variant=describe_variant(extra_overrides, model_args),
        split=split,
        seed=seed,
        params=params,
        macs=macs,
        epochs=recipe["epochs"],
        overrides={**RECIPES[name], **extra_overrides},
        model_args=model_args,
        final=history[-1]["test_acc"],
        final_plain=final_by_shifts[0],  # one pass per image
        final_tta=final_by_shifts[1],  # averaged over each image and its 1-pixel shifts
        best=max(entry["test_acc"] for entry in history),
        curve=[entry["test_acc"] for entry in history],
        seconds=sum(entry["seconds"] for entry in history),
        threads=torch.get_num_threads(),
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def describe_variant(extra_overrides, model_args):
    parts = [f"{k}={v}" for k, v in sorted(extra_overrides.items())] + [f"{k}={v}" for k, v in sorted(model_args.items())]
    return " ".join(parts) if parts else "registry"


def load_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def mean_of(group, key):
    """'mean (runs)' of record[key] over the runs that recorded it, or '-'."""
    values = [r[key] for r in group if key in r]
    return f"{statistics.mean(values):.3f} ({len(values)})" if values else "-"


def summarise(records):
    """One row per (model, recipe, model arguments): seeds, mean/min/max final accuracy, seconds per run.

    A row is marked registry when its recipe is model.RECIPES' current one for that model.
    """
    groups = {}
    for record in records:
        key = (record["model"], json.dumps(record["overrides"], sort_keys=True), json.dumps(record["model_args"], sort_keys=True))
        groups.setdefault(key, []).append(record)
    rows = []
    for (name, overrides, model_args), group in groups.items():
        by_seed = {r["seed"]: r for r in group}  # a seed run twice counts once (the later run)
        group = [by_seed[s] for s in sorted(by_seed)]
        finals = [r["final"] for r in group]
        registry = overrides == json.dumps(RECIPES.get(name), sort_keys=True) and model_args == "{}"
        variant = " ".join(f"{k}={v}" for k, v in sorted({**json.loads(overrides), **json.loads(model_args)}.items())) or "default recipe"
        rows.append(
            dict(
                model=name,
                variant=variant + (" (registry)" if registry else ""),
                registry=registry,
                params=group[0]["params"],
                macs=group[0]["macs"],
                epochs=group[0]["epochs"],
                batch_size=dict(utils.RECIPE, **json.loads(overrides))["batch_size"],
                seeds=[r["seed"] for r in group],
                finals=finals,
                mean=statistics.mean(finals),
                min=min(finals),
                max=max(finals),
                hits=sum(f >= TARGET for f in finals),
                seconds=statistics.mean(r["seconds"] for r in group),
                # Every run since test-time augmentation was measured records both ways of testing it.
                plain=mean_of(group, "final_plain"),
                tta=mean_of(group, "final_tta"),
            )
        )
    rows.sort(key=lambda row: (row["params"], row["variant"]))
    return rows


def print_table(rows, split):
    where = "last 10,000 training images (trained on the first 50,000)" if split == "holdout" else "10,000 test images (trained on all 60,000)"
    print(f"Final-epoch accuracy on the {where}; the time columns are explained below the table.")
    print()
    print(f"| model | variant | parameters | MACs/image | epochs | seeds | mean | min | max | >= {TARGET}% | one pass | with TTA | wall s/run | CPU ms/step | CPU s/run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['variant']} | {r['params']:,} | {r['macs']:,} | {r['epochs']} | {len(r['seeds'])} | "
            f"{r['mean']:.3f} | {r['min']:.2f} | {r['max']:.2f} | {r['hits']}/{len(r['seeds'])} | {r.get('plain', '-')} | "
            f"{r.get('tta', '-')} | {r['seconds']:.0f} | "
            f"{r['cpu_ms_step']:.1f} | {r['cpu_seconds']:.0f} |"
        )
    print()
    print("wall s/run: measured wall time of each run (training and per-epoch evaluation), on a machine shared with other")
    print("work; not comparable between rows. CPU ms/step: median CPU time of one float32 training step at the row's batch size, one")
    print("thread, measured when the table is drawn (cpu_ms_per_step). CPU s/run = CPU ms/step x steps per run (training")
    print("only, no augmentation or evaluation): the comparable time; the seconds plot uses it.")
    print()
    print("mean/min/max: the final epoch as the recipe tests it (with test-time augmentation where the recipe's")
    print("test_shifts is 1). one pass / with TTA: the same final models tested both ways, mean (number of runs")
    print("that recorded it): each image once, and averaged over the image and its four 1-pixel shifts.")
    if any("seeds.txt" in r["variant"] for r in rows):
        print()
        print("OptimizedNet's row is read from bench/results/seeds.txt (bench/seeds.py, default recipe, 2 threads), not trained here.")
    print()
    print("Per seed (final epoch):")
    print()
    for r in rows:
        runs = ", ".join(f"{s}: {f:.2f}" for s, f in zip(r["seeds"], r["finals"]))
        print(f"- {r['model']} ({r['variant']}): {runs}")


def plot(rows, split, plot_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("registry") or r["model"] == "OptimizedNet"] or rows
    label = "test" if split == "test" else "held-out"
    for x_key, x_label, filename in (
        ("params", "parameters", f"frontier.{split}.params.png"),
        ("cpu_seconds", "CPU seconds per training run (one thread, float32, training steps only)", f"frontier.{split}.seconds.png"),
    ):
        figure, axis = plt.subplots(figsize=(8, 6))
        for r in rows:
            x = r[x_key]
            axis.errorbar(
                [x], [r["mean"]], yerr=[[r["mean"] - r["min"]], [r["max"] - r["mean"]]],
                fmt="o", capsize=4, label=f"{r['model']} ({r['params']:,} params, {r['epochs']} ep, {len(r['seeds'])} seeds)",
            )
            axis.scatter([x] * len(r["finals"]), r["finals"], s=8, color="gray", alpha=0.5, zorder=3)
        for ref, marker in zip(REFERENCES if split == "test" else [], ("*", "X")):
            if x_key == "params":
                axis.scatter([ref["params"]], [ref["accuracy"]], marker=marker, s=120, color="black", label=ref["label"] + " (reported)")
            else:  # no time was measured for them here: shown as accuracy levels only
                axis.axhline(ref["accuracy"], color="black", linestyle=":", linewidth=1, label=ref["label"] + " (reported; time unknown)")
        axis.axhline(TARGET, color="red", linestyle="--", linewidth=1, label=f"{TARGET}%")
        if x_key == "params":
            axis.set_xscale("log")
            ticks = [3000, 4000, 6000, 8000, 12000, 20000]
            axis.set_xticks(ticks, [f"{t:,}" for t in ticks])
            axis.minorticks_off()
        axis.set(
            xlabel=x_label, ylabel=f"final-epoch {label} accuracy (%)",
            title=f"MNIST: final {label} accuracy (mean, min-max bar, each seed gray) against {x_label.split(' (')[0]}",
        )
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        figure.tight_layout()
        os.makedirs(plot_dir, exist_ok=True)
        figure.savefig(os.path.join(plot_dir, filename), dpi=110)
        plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    parser.add_argument("--models", nargs="+", default=[name for name in MODELS if name != "OptimizedNet"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--split", choices=("holdout", "test"), default="holdout")
    parser.add_argument("--plot-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--records", help="JSON-lines file of runs (default: PLOT_DIR/frontier.SPLIT.jsonl)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides on top of the model's RECIPES entry (experiments only)")
    parser.add_argument("--model-arg", nargs="*", default=[], metavar="KEY=VALUE", help="model constructor arguments (experiments only)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default: on a 2-core machine shared with other work, 2 threads made a training step up to 20x slower")
    parser.add_argument("--table-only", action="store_true", help="redraw table and plots from the records, train nothing")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    records_path = args.records or os.path.join(args.plot_dir, f"frontier.{args.split}.jsonl")
    if not args.table_only:
        overrides, model_args = parse_overrides(args.set), parse_overrides(args.model_arg)
        for name in args.models:
            for seed in args.seeds:
                record = run_one(name, seed, args.split, args.data_dir, overrides, model_args)
                os.makedirs(os.path.dirname(os.path.abspath(records_path)), exist_ok=True)
                with open(records_path, "a") as file:
                    file.write(json.dumps(record) + "\n")
                print(f"{name} [{record['variant']}] seed {seed}: final {record['final']:.2f}% "
                      f"(best {record['best']:.2f}%) in {record['seconds']:.0f} s", file=sys.stderr, flush=True)
    rows = summarise(load_records(records_path))
    train_size = 60_000 if args.split == "test" else 60_000 - HOLDOUT
    reference = seeds_reference() if args.split == "test" else None
    if reference and not any(r["model"] == "OptimizedNet" for r in rows):
        rows.append(reference)
    step_ms = {}
    for r in rows:
        batch_size = r.get("batch_size", utils.RECIPE["batch_size"])
        if (r["model"], batch_size) not in step_ms:
            step_ms[r["model"], batch_size] = cpu_ms_per_step(r["model"], batch_size)
        r["cpu_ms_step"] = step_ms[r["model"], batch_size]
        r["cpu_seconds"] = r["cpu_ms_step"] * (-(-train_size // batch_size)) * r["epochs"] / 1000
    print_table(rows, args.split)
    if rows:
        plot(rows, args.split, args.plot_dir)


if __name__ == "__main__":
    main()
