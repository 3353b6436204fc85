"""Read your own handwritten digits with a model saved by train.py.

    python train.py --save-model digits.pt
    python predict.py --model digits.pt my-seven.jpg scan.png
    my-seven.jpg: 7 (p=0.998)
    scan.png: 3 (p=0.871)

Each image is a photo or scan of one dark digit on light paper (any size, PNG, JPEG or anything
else Pillow reads, colour or grey). It is prepared the way MNIST's digits were made
(digits.prepare_digit) before the model sees it.

Output: one line per image, in the order given. Predictions go to stdout; an image that cannot
be read or holds no digit gets one line `IMAGE: error: REASON` on stderr instead, in its place, and
the other images are still predicted. Exit status: 0 when every image was predicted, 1 when any
was not, 2 when the model cannot be loaded or the arguments are wrong.
"""

import argparse
import sys

import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        prog="predict.py",
        description="Predict the digit in each image with a model saved by train.py --save-model.",
        epilog="Prints `IMAGE: DIGIT (p=PROBABILITY)` per image on stdout, or `IMAGE: error: REASON` on stderr. "
        "Exit status 0: all predicted; 1: some image failed; 2: no usable model or bad arguments.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default="digits.pt", metavar="FILE", help="model file written by train.py --save-model (or model.save_model)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photo or scan of one dark digit on light paper")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported only now: loading torch takes seconds, and --help or a usage error needs none of it.
    import digits
    import model as models

    try:
        model = models.load_model(args.model, "cpu")  # a few images: the CPU answers sooner than a GPU starts
    except models.ModelFileError as error:
        print(f"predict.py: error: {error}", file=sys.stderr)
        return cli.USAGE_ERROR

    failed = False
    for path, result in zip(args.images, digits.predict_digits(model, "cpu", args.images, skip_unreadable=True)):
        if isinstance(result, digits.DigitImageError):
            failed = True
            print(f"{path}: error: {result.reason}", file=sys.stderr, flush=True)
        else:
            digit, probability = result
            print(f"{path}: {digit} (p={probability:.3f})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.hide_torch_storage_warning()  # torch 2.1 prints it from inside torch.load: one line per image
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("predict.py: interrupted", file=sys.stderr)
        sys.exit(cli.INTERRUPTED)
    except Exception as error:  # a bug, not a bad input: still one line, with the error's type to report
        print(f"predict.py: error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(cli.FAILURE)
