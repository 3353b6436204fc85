"""Train an MNIST classifier from model.py on the command line.

    python train.py                      # OptimizedNet with the project's recipe (utils.RECIPE), seed 1
    python train.py --epochs 3 --seed 7 --data-dir ~/mnist --history-out run.json --save-model digits.pt

Exit status: 0 when done, 1 when the data cannot be read or an output cannot be written, 2 for a
bad argument, 130 after Ctrl-C (the completed epochs are still written out).
"""

import json
import pathlib
import sys

import torch

import cli
import model as models
import utils


def parse_args(argv=None):
    names = ", ".join(f"{name} ({models.count_parameters(cls()):,} parameters)" for name, cls in models.MODELS.items())
    parser = cli.ArgumentParser(prog="train.py", description="Train an MNIST classifier from model.py.")
    parser.add_argument("--model", choices=list(models.MODELS), default="OptimizedNet", metavar="NAME",
                        help=f"which model, trained with its own recipe: {names} (default: OptimizedNet)")
    parser.add_argument("--epochs", type=cli.positive_int, help="training epochs (default: the model's recipe)")
    parser.add_argument("--batch-size", type=cli.positive_int, help="training batch size (default: the model's recipe)")
    parser.add_argument("--lr", type=cli.positive_float, help="peak learning rate of the OneCycle schedule (default: the model's recipe)")
    parser.add_argument("--seed", type=cli.seed, default=1, help="random seed, 0 to 2**32-1 (default: 1)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="MNIST is read from DIR/MNIST/raw/ (the four files, raw or .gz), else downloaded there "
                             "(default: data/ beside utils.py)")
    parser.add_argument("--pipeline", choices=["tensor", "torchvision"],
                        help="tensor: data held as tensors, augmented per batch; torchvision: the conventional DataLoader "
                             "(default: tensor)")
    parser.add_argument("--float32", action="store_true", help="train in float32 even where bfloat16 autocast is fast")
    parser.add_argument("--history-out", type=cli.writable_file, metavar="FILE.json", help="write the per-epoch history as JSON")
    parser.add_argument("--save-model", type=cli.writable_file, metavar="FILE.pt",
                        help="save the trained model, for predict.py --model FILE.pt")
    return parser.parse_args(argv)


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:  # before training started, or while writing the outputs
        print("train.py: interrupted", file=sys.stderr)
        sys.exit(cli.INTERRUPTED)


def run(args):
    overrides = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, pipeline=args.pipeline)
    recipe = dict(utils.RECIPE, **models.RECIPES[args.model])
    recipe.update({key: value for key, value in overrides.items() if value is not None})
    if args.float32:
        recipe["bfloat16"] = False
    device = utils.get_device()
    utils.set_seed(args.seed)
    try:
        train_loader, test_loader = utils.get_data_loaders(args.data_dir, device, recipe)
    except utils.MNISTNotFoundError as error:
        sys.exit(f"train.py: error: {error}")

    model = models.MODELS[args.model]()
    params = models.count_parameters(model)
    precision = utils.precision(device, recipe)
    print(f"{args.model}: {params} parameters, device {device}, torch {torch.__version__}, seed {args.seed}, "
          f"training in {'bfloat16 autocast' if precision == 'bfloat16' else 'float32'}")
    print("Recipe: " + ", ".join(f"{key}={value}" for key, value in recipe.items()))

    history, weights = [], {}

    def keep(entry):  # after each completed epoch, so that Ctrl-C loses only the epoch under way
        history.append(entry)
        if args.save_model:
            weights.update({key: value.detach().clone() for key, value in model.state_dict().items()})

    interrupted = False
    try:
        utils.fit(model, device, train_loader, test_loader, recipe, on_epoch_end=keep)
    except KeyboardInterrupt:
        interrupted = True

    total_seconds = sum(epoch["seconds"] for epoch in history)
    if history and not interrupted:
        print(f"Final test accuracy {history[-1]['test_acc']:.2f}% after {plural(len(history), 'epoch')}, {total_seconds:.1f} s")
    try:
        if args.history_out:
            record = dict(model=args.model, params=params, seed=args.seed, device=str(device), torch=torch.__version__,
                          precision=precision, interrupted=interrupted, recipe=recipe, epochs=history)
            text = json.dumps(record, indent=2) + "\n"
            cli.save_atomically(args.history_out, lambda path: pathlib.Path(path).write_text(text))
        if args.save_model and weights:
            if interrupted:  # back to the last completed epoch; a finished run keeps fit's final model (its EMA, if any)
                model.load_state_dict(weights)
            models.save_model(model, args.save_model)
    except OSError as error:
        sys.exit(f"train.py: error: could not write output: {error}")

    if interrupted:
        kept = [args.history_out] if args.history_out else []
        if weights:  # only kept when --save-model was given and an epoch completed
            kept.append(args.save_model)
        where = f"; kept them in {' and '.join(kept)}" if kept and history else ""
        print(f"train.py: interrupted after {plural(len(history), 'completed epoch')}{where}", file=sys.stderr)
        sys.exit(cli.INTERRUPTED)
    return 0


if __name__ == "__main__":
    main()
