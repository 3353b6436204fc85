"""Train OptimizedNet on MNIST from the command line.

    python train.py                      # the project's recipe (utils.RECIPE), seed 1
    python train.py --epochs 3 --seed 7 --data-dir ~/mnist --history-out run.json
"""

import argparse
import json
import math
import os
import pathlib
import sys

import torch

import utils
from backprop.atomic import save_atomically
from model import OptimizedNet


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        # One line, no usage dump: the message says what to fix.
        sys.exit(f"{self.prog}: error: {message} (see --help)")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def writable_file(text):
    """Check an output path before training, so a typo does not cost a whole run."""
    path = os.path.abspath(text)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file path")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable")
    return text


def parse_args(argv=None):
    recipe = utils.RECIPE
    parser = ArgumentParser(description="Train OptimizedNet on MNIST.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=positive_int, default=recipe["epochs"], help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=recipe["batch_size"], help="training batch size")
    parser.add_argument("--lr", type=positive_float, default=recipe["lr"], help="peak learning rate of the OneCycle schedule")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--data-dir", default="data", help="MNIST is read from DATA_DIR/MNIST/raw/ (the four files, raw or .gz), else downloaded there")
    parser.add_argument("--pipeline", choices=["tensor", "torchvision"], default=recipe["pipeline"], help="tensor: data held as tensors, augmented per batch; torchvision: the conventional DataLoader")
    parser.add_argument("--float32", action="store_true", help="train in float32 even where bfloat16 autocast is fast")
    parser.add_argument("--history-out", type=writable_file, metavar="FILE.json", help="write the per-epoch history as JSON")
    parser.add_argument("--save-model", type=writable_file, metavar="PATH", help="save the trained weights (state_dict)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    recipe = dict(
        utils.RECIPE,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        pipeline=args.pipeline,
        bfloat16=utils.RECIPE["bfloat16"] and not args.float32,
    )
    device = utils.get_device()
    utils.set_seed(args.seed)
    try:
        train_loader, test_loader = utils.get_data_loaders(args.data_dir, device, recipe)
    except utils.MNISTNotFoundError as error:
        sys.exit(f"train.py: error: {error}")

    model = OptimizedNet()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    bfloat16 = recipe["bfloat16"] and utils.bfloat16_is_fast(device)
    print(f"OptimizedNet: {params} parameters, device {device}, torch {torch.__version__}, seed {args.seed}, "
          f"training in {'bfloat16 autocast' if bfloat16 else 'float32'}")
    print("Recipe: " + ", ".join(f"{key}={value}" for key, value in recipe.items()))
    history = utils.fit(model, device, train_loader, test_loader, recipe)
    total_seconds = sum(epoch["seconds"] for epoch in history)
    print(f"Final test accuracy {history[-1]['test_acc']:.2f}% after {len(history)} epochs, {total_seconds:.1f} s")

    try:
        if args.history_out:
            record = dict(params=params, seed=args.seed, device=str(device), torch=torch.__version__, recipe=recipe, epochs=history)
            text = json.dumps(record, indent=2) + "\n"
            save_atomically(args.history_out, lambda path: pathlib.Path(path).write_text(text))
        if args.save_model:
            save_atomically(args.save_model, lambda path: torch.save(model.state_dict(), path))
    except OSError as error:
        sys.exit(f"train.py: error: could not write output: {error}")


if __name__ == "__main__":
    main()
