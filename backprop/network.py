"""The 2-2-2 network, its error and every gradient, in plain Python floats.

Naming: h1, h2, o1, o2 are the weighted sums going into a neuron; a_h1 .. a_o2
are what comes out of the sigmoid. dE_dx reads "dE_total / dx".

    h1 = w1*i1 + w2*i2        o1 = w5*a_h1 + w6*a_h2
    h2 = w3*i1 + w4*i2        o2 = w7*a_h1 + w8*a_h2
"""

import math
from typing import NamedTuple

INPUTS = (0.05, 0.10)      # i1, i2
TARGETS = (0.01, 0.99)     # t1, t2
INITIAL_WEIGHTS = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)  # w1 .. w8
RATES = (0.1, 0.2, 0.5, 0.8, 1.0, 2.0)
MAX_ITERATIONS = 10_000    # the workbook gets one row per iteration


def sigmoid(x):
    # Two branches so that exp() never overflows, whatever a large rate does to x.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Forward(NamedTuple):
    h1: float
    a_h1: float
    h2: float
    a_h2: float
    o1: float
    a_o1: float
    o2: float
    a_o2: float
    E1: float
    E2: float
    E_total: float


class Backward(NamedTuple):
    # output layer
    dE_da_o1: float
    dE_da_o2: float
    da_o1_do1: float
    da_o2_do2: float
    dE_do1: float
    dE_do2: float
    dE_dw5: float
    dE_dw6: float
    dE_dw7: float
    dE_dw8: float
    # hidden layer
    dE_da_h1: float
    dE_da_h2: float
    da_h1_dh1: float
    da_h2_dh2: float
    dE_dh1: float
    dE_dh2: float
    dE_dw1: float
    dE_dw2: float
    dE_dw3: float
    dE_dw4: float

    def weight_gradients(self):
        """(dE_dw1, ..., dE_dw8), in the order of the weights."""
        return (self.dE_dw1, self.dE_dw2, self.dE_dw3, self.dE_dw4,
                self.dE_dw5, self.dE_dw6, self.dE_dw7, self.dE_dw8)


def forward(weights, inputs=INPUTS, targets=TARGETS):
    w1, w2, w3, w4, w5, w6, w7, w8 = weights
    i1, i2 = inputs
    t1, t2 = targets
    h1 = w1 * i1 + w2 * i2
    a_h1 = sigmoid(h1)
    h2 = w3 * i1 + w4 * i2
    a_h2 = sigmoid(h2)
    o1 = w5 * a_h1 + w6 * a_h2
    a_o1 = sigmoid(o1)
    o2 = w7 * a_h1 + w8 * a_h2
    a_o2 = sigmoid(o2)
    # The 1/2 cancels the 2 that differentiating the square brings down.
    E1 = 0.5 * (t1 - a_o1) ** 2
    E2 = 0.5 * (t2 - a_o2) ** 2
    return Forward(h1, a_h1, h2, a_h2, o1, a_o1, o2, a_o2, E1, E2, E1 + E2)


def backward(weights, f, inputs=INPUTS, targets=TARGETS):
    """Every gradient of E_total, each one link of the chain rule at a time."""
    w1, w2, w3, w4, w5, w6, w7, w8 = weights
    i1, i2 = inputs
    t1, t2 = targets

    # Output layer. E1 depends on a_o1 only, E2 on a_o2 only.
    dE_da_o1 = -(t1 - f.a_o1)
    dE_da_o2 = -(t2 - f.a_o2)
    # sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)): needs only the output we have.
    da_o1_do1 = f.a_o1 * (1 - f.a_o1)
    da_o2_do2 = f.a_o2 * (1 - f.a_o2)
    dE_do1 = dE_da_o1 * da_o1_do1
    dE_do2 = dE_da_o2 * da_o2_do2
    # do1/dw5 is what w5 multiplies: a_h1.
    dE_dw5 = dE_do1 * f.a_h1
    dE_dw6 = dE_do1 * f.a_h2
    dE_dw7 = dE_do2 * f.a_h1
    dE_dw8 = dE_do2 * f.a_h2

    # Hidden layer. a_h1 feeds both o1 (through w5) and o2 (through w7), so its
    # gradient is the sum over both paths; this sum is where copies go wrong.
    dE_da_h1 = dE_do1 * w5 + dE_do2 * w7
    dE_da_h2 = dE_do1 * w6 + dE_do2 * w8
    da_h1_dh1 = f.a_h1 * (1 - f.a_h1)
    da_h2_dh2 = f.a_h2 * (1 - f.a_h2)
    dE_dh1 = dE_da_h1 * da_h1_dh1
    dE_dh2 = dE_da_h2 * da_h2_dh2
    dE_dw1 = dE_dh1 * i1
    dE_dw2 = dE_dh1 * i2
    dE_dw3 = dE_dh2 * i1
    dE_dw4 = dE_dh2 * i2

    return Backward(dE_da_o1, dE_da_o2, da_o1_do1, da_o2_do2, dE_do1, dE_do2,
                    dE_dw5, dE_dw6, dE_dw7, dE_dw8,
                    dE_da_h1, dE_da_h2, da_h1_dh1, da_h2_dh2, dE_dh1, dE_dh2,
                    dE_dw1, dE_dw2, dE_dw3, dE_dw4)


class Row(NamedTuple):
    """One iteration: the weights it starts from and what they give."""
    iteration: int
    weights: tuple
    forward: Forward
    backward: Backward


def check_rate(eta):
    """The learning rate as a float; ValueError unless it is a finite number > 0."""
    if isinstance(eta, bool):
        raise ValueError(f"learning rate must be a number, got {eta!r}")
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"learning rate must be a number, got {eta!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning rate must be a finite number > 0, got {eta!r}")
    return value


def check_iterations(iterations):
    """The iteration count as an int; ValueError unless 1 <= it <= MAX_ITERATIONS."""
    if isinstance(iterations, bool):
        raise ValueError(f"iterations must be a whole number, got {iterations!r}")
    if isinstance(iterations, str):
        try:
            iterations = int(iterations.strip())
        except ValueError:
            raise ValueError(f"iterations must be a whole number, got {iterations!r}") from None
    try:
        whole = int(iterations)
        is_whole = whole == iterations
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"iterations must be a whole number, got {iterations!r}") from None
    if not is_whole:
        raise ValueError(f"iterations must be a whole number, got {iterations!r}")
    if not 1 <= whole <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations!r}")
    return whole


def train(eta, iterations, weights=INITIAL_WEIGHTS, inputs=INPUTS, targets=TARGETS):
    """Rows for iterations 0 .. iterations: `iterations` updates, and the state after the last."""
    eta = check_rate(eta)
    iterations = check_iterations(iterations)
    weights = tuple(float(w) for w in weights)
    rows = []
    for n in range(iterations + 1):
        f = forward(weights, inputs, targets)
        b = backward(weights, f, inputs, targets)
        rows.append(Row(n, weights, f, b))
        weights = tuple(w - eta * g for w, g in zip(weights, b.weight_gradients()))
    return rows
