"""Backpropagation by hand on the classic 2-2-2 sigmoid network.

network.py holds the maths in plain floats; workbook.py writes the same maths
as live Excel formulas; plots.py draws the error curves; `python -m backprop`
writes all of it.
"""

from .network import (INITIAL_WEIGHTS, INPUTS, RATES, TARGETS, backward, forward,
                      sigmoid, train)

__all__ = ["INITIAL_WEIGHTS", "INPUTS", "RATES", "TARGETS", "backward", "forward",
           "sigmoid", "train"]
