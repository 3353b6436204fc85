"""python -m backprop.sweep: how far does a larger learning rate keep helping?

Prints E_total after 1, 10 and N iterations for rates up to 1000, what the
first step does to the output sums o1, o2 and to the sigmoid's slope there,
and the rate with the lowest E_total after N iterations on a grid of rates.
"""

import math
import sys

from cli import FAILURE, ArgumentParser, checked

from .__main__ import DEFAULT_ITERATIONS
from .network import TARGETS, check_iterations, check_rate, train

SWEEP_RATES = (0.1, 0.2, 0.5, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 70.0, 80.0, 100.0, 200.0, 500.0, 1000.0)


def logit(p):
    """The o at which sigmoid(o) = p."""
    return math.log(p / (1 - p))


def sweep_table(rates, iterations):
    """E_total after 1, 10, N steps; o, sigmoid'(o) and dE_dw1 after the first step."""
    lines = ["o .. dE_dw1: after the first step (iteration 1); rises: iterations where E_total went up",
             f"{'eta':>7} {'E@1':>10} {'E@10':>10} {'E@' + str(iterations):>10} |"
             f" {'o1':>7} {'o2':>7} {'sig_(o1)':>9} {'sig_(o2)':>9} {'dE_dw1':>10}"
             f" | {'rises':>5}".replace("sig_", "sig'")]
    for eta in rates:
        rows = train(eta, iterations)
        f, b = rows[1].forward, rows[1].backward
        lines.append(
            f"{eta:>7g} {f.E_total:10.3e} {rows[min(10, iterations)].forward.E_total:10.3e}"
            f" {rows[-1].forward.E_total:10.3e} | {f.o1:7.2f} {f.o2:7.2f}"
            f" {b.da_o1_do1:9.2e} {b.da_o2_do2:9.2e} {b.dE_dw1:10.2e}"
            f" | {_rises(rows):5d}")
    return "\n".join(lines)


def _rises(rows):
    """How many iterations ended with a higher E_total than they started with."""
    return sum(later.forward.E_total > earlier.forward.E_total
               for earlier, later in zip(rows, rows[1:]))


def best_rate(iterations, grid):
    """(E_total after `iterations`, eta) lowest over the grid."""
    return min((train(eta, iterations)[-1].forward.E_total, eta) for eta in grid)


def main(argv=None):
    parser = ArgumentParser(prog="python -m backprop.sweep", description=__doc__)
    parser.add_argument("--iterations", type=checked(check_iterations), default=DEFAULT_ITERATIONS, metavar="N",
                        help=f"weight updates per rate (default: {DEFAULT_ITERATIONS})")
    parser.add_argument("--rates", type=checked(check_rate), nargs="+", default=list(SWEEP_RATES), metavar="ETA",
                        help="learning rates (default: " + " ".join(f"{r:g}" for r in SWEEP_RATES) + ")")
    parser.add_argument("--plot", metavar="PNG",
                        help="also draw E_total against iteration for these rates (default: no plot)")
    args = parser.parse_args(argv)
    t1, t2 = TARGETS
    first = train(1.0, 1)[0]
    print(f"iteration 0: o1 = {first.forward.o1:.3f}, o2 = {first.forward.o2:.3f}, "
          f"dE_dw1 = {first.backward.dE_dw1:.2e}")
    print(f"outputs hit the targets exactly at o1 = logit({t1}) = {logit(t1):.3f}, "
          f"o2 = logit({t2}) = {logit(t2):.3f}")
    print(sweep_table(args.rates, args.iterations))
    grid = [float(eta) for eta in range(1, 201)]
    error, eta = best_rate(args.iterations, grid)
    print(f"lowest E_total after {args.iterations} iterations over eta = 1, 2, ..., 200: "
          f"eta = {eta:g} (E_total = {error:.3e})")
    if args.plot:
        from .plots import plot_error_curves
        runs = {eta: train(eta, args.iterations) for eta in args.rates}
        try:
            plot_error_curves(args.plot, runs)
        except OSError as error:
            print(f"python -m backprop.sweep: error: cannot write {args.plot}: {error}", file=sys.stderr)
            return FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
