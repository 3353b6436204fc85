"""python -m backprop --out DIR: train at each rate, write the workbook and plots."""

import os
import sys

from cli import FAILURE, ArgumentParser, checked

from .network import RATES, check_iterations, check_rate, train

DEFAULT_ITERATIONS = 200
REPORT_AT = (0, 10, 50)  # iterations shown in the printed table, plus the last
WORKBOOK = "backprop.xlsx"
ERROR_CURVES = "error_curves.png"
ERROR_GRID = "error_grid.png"
NETWORK = "network.png"


def parse_args(argv=None, prog="python -m backprop", description=__doc__):
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for the outputs (created if missing)")
    parser.add_argument("--iterations", type=checked(check_iterations), default=DEFAULT_ITERATIONS,
                        metavar="N", help="weight updates per rate; rows 0..N "
                        f"(default: {DEFAULT_ITERATIONS})")
    parser.add_argument("--rates", type=checked(check_rate), nargs="+", default=list(RATES), metavar="ETA",
                        help="learning rates, one sheet each (default: "
                        + " ".join(f"{eta:g}" for eta in RATES) + ")")
    args = parser.parse_args(argv)
    if len(set(args.rates)) != len(args.rates):
        parser.error("--rates: each rate may appear only once")
    return args


def error_table(runs, report_at=REPORT_AT):
    """Text table of E_total per rate at a few iterations and at the last one."""
    last = max(len(rows) for rows in runs.values()) - 1
    columns = [n for n in report_at if n < last] + [last]
    lines = ["E_total    " + "".join(f"{'iter ' + str(n):>13}" for n in columns)]
    for eta, rows in runs.items():
        lines.append(f"eta {eta!r:<6} " + "".join(f"{rows[n].forward.E_total:13.6e}" for n in columns))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    # Imported here so that a bad argument fails fast, before matplotlib loads.
    from .plots import plot_error_curves, plot_error_grid, plot_network
    from .workbook import write_workbook

    runs = {eta: train(eta, args.iterations) for eta in args.rates}
    try:
        os.makedirs(args.out, exist_ok=True)
        write_workbook(os.path.join(args.out, WORKBOOK), runs)
        plot_error_curves(os.path.join(args.out, ERROR_CURVES), runs)
        plot_error_grid(os.path.join(args.out, ERROR_GRID), runs)
        plot_network(os.path.join(args.out, NETWORK))
    except OSError as error:
        print(f"python -m backprop: error: cannot write to {args.out}: {error}", file=sys.stderr)
        return FAILURE
    print(error_table(runs))
    print(f"wrote {WORKBOOK}, {ERROR_CURVES}, {ERROR_GRID}, {NETWORK} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
