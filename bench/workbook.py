"""The full-size backprop workbook through both spreadsheet engines, against Python.

    python bench/workbook.py | tee bench/results/workbook.txt

Writes the workbook `python -m backprop` writes (six rates, 200 iterations), has
LibreOffice (headless) and the Python package `formulas` compute every formula,
unmodified and with the 0.5 sheet's rate typed over with 0.37, and prints the
largest difference from backprop/network.py on every row of every rate sheet,
from the values stored in the file, and how long each step took. The test suite
runs the same checks on a short workbook; this is the full-size one (the
`formulas` engine needs minutes for it).
"""

import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from openpyxl import load_workbook  # noqa: E402

from backprop.__main__ import DEFAULT_ITERATIONS  # noqa: E402
from backprop.libreoffice import convert_all  # noqa: E402
from backprop.network import RATES, train  # noqa: E402
from backprop.workbook import COLUMN, GRADIENTS, WEIGHTS, row_of, sheet_name, write_workbook  # noqa: E402

EDITED_SHEET, EDITED_RATE = sheet_name(0.5), 0.37


def python_rows(eta):
    for row in train(eta, DEFAULT_ITERATIONS):
        values = dict(zip(WEIGHTS, row.weights))
        values.update(row.forward._asdict())
        values.update(zip(GRADIENTS, row.backward.weight_gradients()))
        yield row_of(row.iteration), values


def largest_difference(value, rates):
    """max |engine - network.py| over every column of every row of every rate sheet."""
    worst = 0.0
    for sheet, eta in rates.items():
        for r, values in python_rows(eta):
            for name, expected in values.items():
                got = value(sheet, f"{COLUMN[name]}{r}")
                if not isinstance(got, float):
                    raise AssertionError(f"{sheet}!{COLUMN[name]}{r} is {got!r}")
                worst = max(worst, abs(got - expected))
    return worst


def largest_difference_from_stored(value, stored):
    """max |engine - stored value| over every number in the file; strings must be equal."""
    worst = 0.0
    for ws in stored.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                got = value(ws.title, cell.coordinate)
                if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
                    worst = max(worst, abs(got - cell.value))
                elif got != cell.value:
                    raise AssertionError(f"{ws.title}!{cell.coordinate}: {got!r}, stored {cell.value!r}")
    return worst


def formulas_cells(solution):
    cells = {}
    for name, ranges in solution.items():
        match = re.fullmatch(r"'\[.+\](.+)'!([A-Z]+\d+)", name)
        if match:
            v = ranges.value[0][0]
            if isinstance(v, str) and type(v) is not str:        # schedula token: empty or error
                v = None if v == "empty" else f"error {v}"
            elif not isinstance(v, (str, bool)):
                v = float(v)
            cells[match[1], match[2]] = v
    return lambda sheet, cell: cells.get((sheet.upper(), cell))


def main():
    import formulas
    import xlsxwriter

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}, XlsxWriter {xlsxwriter.__version__}, "
          f"formulas {formulas.__version__}")
    rates = {sheet_name(eta): eta for eta in RATES}
    edited_rates = {**rates, EDITED_SHEET: EDITED_RATE}
    with tempfile.TemporaryDirectory(prefix="bench-workbook-") as scratch:
        scratch = Path(scratch)
        path = scratch / "backprop.xlsx"
        start = time.perf_counter()
        write_workbook(path, {eta: train(eta, DEFAULT_ITERATIONS) for eta in RATES})
        print(f"train and write the workbook ({len(RATES)} rates, {DEFAULT_ITERATIONS} iterations): "
              f"{time.perf_counter() - start:.1f} s")
        stored = load_workbook(path, data_only=True)
        print(f"stored values vs network.py:          max |difference| "
              f"{largest_difference(lambda s, c: stored[s][c].value, rates):.1e}")

        edited = scratch / "edited.xlsx"
        wb = load_workbook(path)
        wb[EDITED_SHEET]["B1"] = EDITED_RATE
        wb.save(edited)
        start = time.perf_counter()
        unmodified, changed = (load_workbook(p, data_only=True)
                               for p in convert_all([path, edited], "xlsx", scratch / "libreoffice"))
        print(f"LibreOffice, recalculate both files:  {time.perf_counter() - start:.1f} s")
        for label, wb, expected in (("unmodified", unmodified, rates),
                                    (f"{EDITED_SHEET} set to {EDITED_RATE}", changed, edited_rates)):
            value = (lambda book: lambda s, c: book[s][c].value)(wb)
            print(f"  {label:<24} vs network.py: max |difference| "
                  f"{largest_difference(value, expected):.1e}")
        print(f"  unmodified vs stored values:  max |difference| "
              f"{largest_difference_from_stored(lambda s, c: unmodified[s][c].value, stored):.1e}")

        start = time.perf_counter()
        model = formulas.ExcelModel().loads(str(path)).finish()
        loaded = time.perf_counter()
        value = formulas_cells(model.calculate())
        calculated = time.perf_counter()
        print(f"formulas, load {loaded - start:.1f} s, calculate {calculated - loaded:.1f} s")
        print(f"  {'unmodified':<24} vs network.py: max |difference| "
              f"{largest_difference(value, rates):.1e}")
        print(f"  unmodified vs stored values:  max |difference| "
              f"{largest_difference_from_stored(value, stored):.1e}")
        key = f"'[{path.name}]{EDITED_SHEET.upper()}'!B1"
        start = time.perf_counter()
        value = formulas_cells(model.calculate(inputs={key: EDITED_RATE}))
        print(f"  {EDITED_SHEET + ' set to ' + str(EDITED_RATE):<24} vs network.py: max |difference| "
              f"{largest_difference(value, edited_rates):.1e} (calculate {time.perf_counter() - start:.1f} s)")
        verdict = value("Check", "B3")
        print(f"  Check sheet then says: {verdict}")


if __name__ == "__main__":
    main()
