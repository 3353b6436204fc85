"""PNG figures: the error curves, small multiples per rate, the network diagram."""

import math

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from cli import save_atomically

from .network import INITIAL_WEIGHTS

# Figures are built with Figure(), not pyplot: they go straight to files, need no display, and
# leave the backend of whoever imported this module (a notebook, say) alone.


def _save(fig, path):
    save_atomically(path, lambda temporary: fig.savefig(temporary, dpi=120))


def _curve(rows):
    return [row.iteration for row in rows], [row.forward.E_total for row in rows]


def plot_error_curves(path, runs):
    """All rates in one figure; log y, since the rates differ by orders of magnitude."""
    many = len(runs) > 8
    fig = Figure(figsize=(9.5 if many else 8, 5))
    ax = fig.subplots()
    # Past ten lines the default colour cycle repeats; a colour map keeps them apart.
    colors = (matplotlib.colormaps["plasma"]([0.9 * k / (len(runs) - 1) for k in range(len(runs))])
              if many else [None] * len(runs))
    for (eta, rows), color in zip(runs.items(), colors):
        ax.plot(*_curve(rows), label=f"eta = {eta:g}", linewidth=1.8, color=color)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("E_total (log scale)")
    ax.set_title("E_total against iteration for each learning rate")
    ax.grid(True, which="both", alpha=0.3)
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    else:
        ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_error_grid(path, runs):
    """One small panel per rate, same axes everywhere so the panels compare."""
    columns = 3
    rows_of_panels = math.ceil(len(runs) / columns)
    fig = Figure(figsize=(10, 3.2 * rows_of_panels))
    axes = fig.subplots(rows_of_panels, columns, sharex=True, sharey=True, squeeze=False)
    for ax, (eta, rows) in zip(axes.flat, runs.items()):
        ax.plot(*_curve(rows), color="tab:blue")
        ax.set_title(f"eta = {eta:g}: final E_total {rows[-1].forward.E_total:.2e}", fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    for ax in axes[:, 0]:
        ax.set_ylabel("E_total")
    fig.suptitle("E_total against iteration, one panel per learning rate")
    fig.tight_layout()
    _save(fig, path)


def plot_network(path, weights=INITIAL_WEIGHTS):
    """The 2-2-2 network with each weight written on its edge."""
    layers = {"i1": (0, 1), "i2": (0, 0), "h1": (1, 1), "h2": (1, 0), "o1": (2, 1), "o2": (2, 0)}
    labels = {"i1": "i1\n0.05", "i2": "i2\n0.10", "h1": "h1 → a_h1", "h2": "h2 → a_h2",
              "o1": "o1 → a_o1\nt1 = 0.01", "o2": "o2 → a_o2\nt2 = 0.99"}
    edges = [("i1", "h1", "w1"), ("i2", "h1", "w2"), ("i1", "h2", "w3"), ("i2", "h2", "w4"),
             ("h1", "o1", "w5"), ("h2", "o1", "w6"), ("h1", "o2", "w7"), ("h2", "o2", "w8")]
    radius = 0.2
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    for start, end, name in edges:
        (x0, y0), (x1, y1) = layers[start], layers[end]
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        ax.annotate("", xy=(x1 - ux * radius, y1 - uy * radius),
                    xytext=(x0 + ux * radius, y0 + uy * radius),
                    arrowprops=dict(arrowstyle="->", color="gray", lw=1.3))
        value = weights[int(name[1]) - 1]
        fraction = 0.5 if y0 == y1 else 0.3  # keeps crossing labels apart
        ax.text(x0 + (x1 - x0) * fraction, y0 + (y1 - y0) * fraction,
                f"{name} = {value:g}", ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    for node, (x, y) in layers.items():
        color = {"i": "#FFF2CC", "h": "#DDEBF7", "o": "#E2EFDA"}[node[0]]
        ax.add_patch(Circle((x, y), radius, fc=color, ec="black", zorder=3))
        ax.text(x, y, labels[node], ha="center", va="center", fontsize=9, zorder=4)
    for x, title in ((0, "inputs"), (1, "hidden (sigmoid)"), (2, "outputs (sigmoid)")):
        ax.text(x, 1.35, title, ha="center", fontsize=11, weight="bold")
    ax.set_xlim(-0.3, 2.3)
    ax.set_ylim(-0.35, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    _save(fig, path)
