"""The Excel workbook: every number on the rate sheets is a live formula.

Sheets: Inputs, Derivation (the chain rule at iteration 0), one sheet per
learning rate, Compare (a line chart of E_total), Check (Python's values
beside the formulas' values, and the inputs Python used).

Written with XlsxWriter so that every formula cell also stores its value
(Python's, from network.py): file previewers, pandas and
openpyxl(data_only=True) see numbers without recalculating. The formulas use
only plain cell references (no defined names) and the functions EXP, ABS, AND,
IF and COUNTIF, which Excel, LibreOffice, Google Sheets, Numbers and the
Python engines (`formulas`, `pycel`) all have.
"""

import datetime

from xlsxwriter import Workbook
from xlsxwriter.utility import quote_sheetname, xl_col_to_name

from cli import save_atomically
from .network import INITIAL_WEIGHTS, INPUTS, TARGETS

WEIGHTS = [f"w{k}" for k in range(1, 9)]
FORWARD = ["h1", "a_h1", "h2", "a_h2", "o1", "a_o1", "o2", "a_o2", "E1", "E2", "E_total"]
GRADIENTS = [f"dE_dw{k}" for k in range(1, 9)]
COLUMNS = ["iteration"] + WEIGHTS + FORWARD + GRADIENTS
COLUMN = {name: xl_col_to_name(k) for k, name in enumerate(COLUMNS)}

ETA_CELL = "$B$1"      # on every rate sheet, with the label "eta" in A1
HEADER_ROW = 3
FIRST_ROW = 4          # iteration 0
TOLERANCE = 1e-9       # what the Check sheet calls agreement
# A fixed document date, so that writing the same workbook twice gives the same bytes.
DOCUMENT_DATE = datetime.datetime(2024, 1, 1)

# The Inputs sheet: (symbol, value, meaning), one row each from row 4, values in column B.
INPUT_ROWS = ([("i1", INPUTS[0], "input 1"), ("i2", INPUTS[1], "input 2"),
               ("t1", TARGETS[0], "target for output 1"), ("t2", TARGETS[1], "target for output 2")]
              + [(w, value, f"{w} at iteration 0") for w, value in zip(WEIGHTS, INITIAL_WEIGHTS)])
# Where each one lives, as formulas on other sheets write it: i1 -> Inputs!$B$4.
INPUT_CELL = {symbol: f"Inputs!$B${row}"
              for row, (symbol, _, _) in enumerate(INPUT_ROWS, start=FIRST_ROW)}

VALUE_FORMAT = "0.000000"
ERROR_FORMAT = "0.00000000"
GRADIENT_FORMAT = "0.0000E+00"
PRECISE_FORMAT = "0.000000000000"
DIFFERENCE_FORMAT = "0.0E+00"


def sheet_name(eta):
    return f"eta {eta!r}"


def row_of(iteration):
    return FIRST_ROW + iteration


def write_workbook(path, runs):
    """Write the workbook for runs ({eta: rows from network.train}, in sheet order) to path.

    The file appears whole or not at all.
    """
    if not runs:
        raise ValueError("need at least one learning rate")
    save_atomically(path, lambda temporary: _write(temporary, runs))


def _write(path, runs):
    wb = Workbook(path)
    try:
        wb.set_properties({"created": DOCUMENT_DATE})
        formats = _Formats(wb)
        _inputs_sheet(wb.add_worksheet("Inputs"), formats)
        derivation = wb.add_worksheet("Derivation")
        for eta, rows in runs.items():
            _rate_sheet(wb.add_worksheet(sheet_name(eta)), formats, eta, rows)
        first_eta = next(iter(runs))
        _derivation_sheet(derivation, formats, first_eta, runs[first_eta])
        _compare_sheet(wb, wb.add_worksheet("Compare"), formats, runs)
        _check_sheet(wb.add_worksheet("Check"), formats, runs)
        wb.close()
    finally:
        # If building or closing failed, the object must not try to write the
        # file again when it is garbage-collected (XlsxWriter's destructor does).
        wb.fileclosed = True


class _Formats:
    """The cell formats, made once per workbook (XlsxWriter wants them shared)."""

    def __init__(self, wb):
        self.bold = wb.add_format({"bold": True})
        self.italic = wb.add_format({"italic": True})
        self.title = wb.add_format({"bold": True, "font_size": 13})
        self.header = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "align": "center",
                                     "text_wrap": True})
        self.input = wb.add_format({"bg_color": "#FFF2CC"})
        self.rate = wb.add_format({"bg_color": "#FFF2CC", "bold": True})
        self.number = {fmt: wb.add_format({"num_format": fmt})
                       for fmt in (VALUE_FORMAT, ERROR_FORMAT, GRADIENT_FORMAT,
                                   PRECISE_FORMAT, DIFFERENCE_FORMAT)}


def _header(ws, formats, row, labels):
    for col, label in enumerate(labels):
        ws.write_string(row - 1, col, label, formats.header)


def _inputs_sheet(ws, formats):
    ws.write_string("A1", "Inputs, targets and initial weights: change them here, every sheet follows",
                    formats.title)
    ws.write_string("A2", "Formulas on the other sheets read these cells by their address "
                          "(column C), e.g. Inputs!$B$4 is i1.")
    _header(ws, formats, HEADER_ROW, ["quantity", "value", "cell in formulas", "meaning"])
    for row, (symbol, value, meaning) in enumerate(INPUT_ROWS, start=FIRST_ROW):
        ws.write_string(f"A{row}", symbol)
        ws.write_number(f"B{row}", value, formats.input)
        ws.write_string(f"C{row}", INPUT_CELL[symbol])
        ws.write_string(f"D{row}", meaning)
    for col, width in zip("ABCD", (10, 12, 18, 24)):
        ws.set_column(f"{col}:{col}", width)


def _rate_sheet(ws, formats, eta, rows):
    c = COLUMN
    ws.write_string("A1", "eta", formats.bold)
    ws.write_number(ETA_CELL, eta, formats.rate)
    ws.write_string("C1", "<- learning rate eta, which the formulas read as $B$1: type another "
                          "value and the whole sheet recalculates. Inputs!$B$4:$B$7 are i1, i2, "
                          "t1, t2; Inputs!$B$8:$B$15 are w1 .. w8 at iteration 0.")
    groups = {"w1": "weights: row above minus eta * its gradient",
              "h1": "forward pass (this row's weights)",
              "E1": "error", "dE_dw1": "gradients dE_total/dw (this row)"}
    for name, label in groups.items():
        ws.write_string(f"{c[name]}2", label, formats.italic)
    _header(ws, formats, HEADER_ROW, COLUMNS)

    style = {name: formats.number[GRADIENT_FORMAT if name.startswith("dE_")
                                  else ERROR_FORMAT if name.startswith("E") else VALUE_FORMAT]
             for name in COLUMNS[1:]}
    for row in rows:
        r = row_of(row.iteration)
        ws.write_number(f"{c['iteration']}{r}", row.iteration)
        values = _values(row)
        formulas = _row_formulas(r)
        for w in WEIGHTS:
            if row.iteration == 0:
                formulas[w] = f"={INPUT_CELL[w]}"
            else:
                formulas[w] = f"={c[w]}{r - 1}-{ETA_CELL}*{c['dE_d' + w]}{r - 1}"
        for name in COLUMNS[1:]:
            ws.write_formula(f"{c[name]}{r}", formulas[name], style[name], values[name])

    ws.freeze_panes(f"B{FIRST_ROW}")
    ws.set_column("A:A", 9)
    ws.set_column(f"B:{c[COLUMNS[-1]]}", 11)
    # Printing (and the screenshot) shows the first rows on one landscape page.
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(HEADER_ROW - 1)


def _values(row):
    """Python's value of every column of a row: what the formulas compute, stored beside them."""
    values = dict(zip(WEIGHTS, row.weights))
    values.update(row.forward._asdict())
    values.update(zip(GRADIENTS, row.backward.weight_gradients()))
    return values


def _row_formulas(r):
    """Forward pass, error and gradients of row r, from that row's weights."""
    def at(name):
        return f"{COLUMN[name]}{r}"
    i1, i2, t1, t2 = (INPUT_CELL[k] for k in ("i1", "i2", "t1", "t2"))
    w1, w2, w3, w4, w5, w6, w7, w8 = (at(w) for w in WEIGHTS)
    a_h1, a_h2, a_o1, a_o2 = at("a_h1"), at("a_h2"), at("a_o1"), at("a_o2")
    # dE_total/do1 and dE_total/do2, written out where they are used so each
    # gradient cell reads as its whole chain-rule product.
    dE_do1 = f"({a_o1}-{t1})*{a_o1}*(1-{a_o1})"
    dE_do2 = f"({a_o2}-{t2})*{a_o2}*(1-{a_o2})"
    dE_da_h1 = f"({dE_do1}*{w5}+{dE_do2}*{w7})"
    dE_da_h2 = f"({dE_do1}*{w6}+{dE_do2}*{w8})"
    return {
        "h1": f"={w1}*{i1}+{w2}*{i2}",
        "a_h1": f"=1/(1+EXP(-{at('h1')}))",
        "h2": f"={w3}*{i1}+{w4}*{i2}",
        "a_h2": f"=1/(1+EXP(-{at('h2')}))",
        "o1": f"={w5}*{a_h1}+{w6}*{a_h2}",
        "a_o1": f"=1/(1+EXP(-{at('o1')}))",
        "o2": f"={w7}*{a_h1}+{w8}*{a_h2}",
        "a_o2": f"=1/(1+EXP(-{at('o2')}))",
        "E1": f"=0.5*({t1}-{a_o1})^2",
        "E2": f"=0.5*({t2}-{a_o2})^2",
        "E_total": f"={at('E1')}+{at('E2')}",
        "dE_dw1": f"={dE_da_h1}*{a_h1}*(1-{a_h1})*{i1}",
        "dE_dw2": f"={dE_da_h1}*{a_h1}*(1-{a_h1})*{i2}",
        "dE_dw3": f"={dE_da_h2}*{a_h2}*(1-{a_h2})*{i1}",
        "dE_dw4": f"={dE_da_h2}*{a_h2}*(1-{a_h2})*{i2}",
        "dE_dw5": f"={dE_do1}*{a_h1}",
        "dE_dw6": f"={dE_do1}*{a_h2}",
        "dE_dw7": f"={dE_do2}*{a_h1}",
        "dE_dw8": f"={dE_do2}*{a_h2}",
    }


# (name, in words, in symbols, formula): {x} is the Derivation cell of x, or
# the Inputs cell of an input (i1, t1, w1, ...).
DERIVATION = [
    ("Forward pass", None, None, None),
    ("h1", "weighted sum into hidden neuron 1", "h1 = w1·i1 + w2·i2", "={w1}*{i1}+{w2}*{i2}"),
    ("a_h1", "squashed by the sigmoid", "a_h1 = σ(h1) = 1 / (1 + e^(−h1))", "=1/(1+EXP(-{h1}))"),
    ("h2", "weighted sum into hidden neuron 2", "h2 = w3·i1 + w4·i2", "={w3}*{i1}+{w4}*{i2}"),
    ("a_h2", "squashed by the sigmoid", "a_h2 = σ(h2)", "=1/(1+EXP(-{h2}))"),
    ("o1", "weighted sum into output neuron 1", "o1 = w5·a_h1 + w6·a_h2", "={w5}*{a_h1}+{w6}*{a_h2}"),
    ("a_o1", "output 1", "a_o1 = σ(o1)", "=1/(1+EXP(-{o1}))"),
    ("o2", "weighted sum into output neuron 2", "o2 = w7·a_h1 + w8·a_h2", "={w7}*{a_h1}+{w8}*{a_h2}"),
    ("a_o2", "output 2", "a_o2 = σ(o2)", "=1/(1+EXP(-{o2}))"),
    ("Error", None, None, None),
    ("E1", "half the squared miss of output 1", "E1 = ½·(t1 − a_o1)²", "=0.5*({t1}-{a_o1})^2"),
    ("E2", "half the squared miss of output 2", "E2 = ½·(t2 − a_o2)²", "=0.5*({t2}-{a_o2})^2"),
    ("E_total", "what gradient descent makes small", "E_total = E1 + E2", "={E1}+{E2}"),
    ("Output layer: w5 .. w8", None, None, None),
    ("dE_da_o1", "only E1 depends on a_o1", "∂E_total/∂a_o1 = −(t1 − a_o1)", "=-({t1}-{a_o1})"),
    ("da_o1_do1", "slope of the sigmoid, from its output", "∂a_o1/∂o1 = a_o1·(1 − a_o1)", "={a_o1}*(1-{a_o1})"),
    ("dE_do1", "chain the two", "∂E_total/∂o1 = ∂E_total/∂a_o1 · ∂a_o1/∂o1", "={dE_da_o1}*{da_o1_do1}"),
    ("dE_dw5", "w5 multiplies a_h1 in o1", "∂E_total/∂w5 = ∂E_total/∂o1 · ∂o1/∂w5 = ∂E_total/∂o1 · a_h1", "={dE_do1}*{a_h1}"),
    ("dE_dw6", "w6 multiplies a_h2 in o1", "∂E_total/∂w6 = ∂E_total/∂o1 · a_h2", "={dE_do1}*{a_h2}"),
    ("dE_da_o2", "only E2 depends on a_o2", "∂E_total/∂a_o2 = −(t2 − a_o2)", "=-({t2}-{a_o2})"),
    ("da_o2_do2", "slope of the sigmoid, from its output", "∂a_o2/∂o2 = a_o2·(1 − a_o2)", "={a_o2}*(1-{a_o2})"),
    ("dE_do2", "chain the two", "∂E_total/∂o2 = ∂E_total/∂a_o2 · ∂a_o2/∂o2", "={dE_da_o2}*{da_o2_do2}"),
    ("dE_dw7", "w7 multiplies a_h1 in o2", "∂E_total/∂w7 = ∂E_total/∂o2 · a_h1", "={dE_do2}*{a_h1}"),
    ("dE_dw8", "w8 multiplies a_h2 in o2", "∂E_total/∂w8 = ∂E_total/∂o2 · a_h2", "={dE_do2}*{a_h2}"),
    ("Hidden layer: w1 .. w4", None, None, None),
    ("dE_da_h1", "a_h1 feeds o1 (via w5) and o2 (via w7): add both paths",
     "∂E_total/∂a_h1 = ∂E_total/∂o1 · w5 + ∂E_total/∂o2 · w7", "={dE_do1}*{w5}+{dE_do2}*{w7}"),
    ("da_h1_dh1", "slope of the sigmoid", "∂a_h1/∂h1 = a_h1·(1 − a_h1)", "={a_h1}*(1-{a_h1})"),
    ("dE_dh1", "chain the two", "∂E_total/∂h1 = ∂E_total/∂a_h1 · ∂a_h1/∂h1", "={dE_da_h1}*{da_h1_dh1}"),
    ("dE_dw1", "w1 multiplies i1 in h1", "∂E_total/∂w1 = ∂E_total/∂h1 · i1", "={dE_dh1}*{i1}"),
    ("dE_dw2", "w2 multiplies i2 in h1", "∂E_total/∂w2 = ∂E_total/∂h1 · i2", "={dE_dh1}*{i2}"),
    ("dE_da_h2", "a_h2 feeds o1 (via w6) and o2 (via w8): add both paths",
     "∂E_total/∂a_h2 = ∂E_total/∂o1 · w6 + ∂E_total/∂o2 · w8", "={dE_do1}*{w6}+{dE_do2}*{w8}"),
    ("da_h2_dh2", "slope of the sigmoid", "∂a_h2/∂h2 = a_h2·(1 − a_h2)", "={a_h2}*(1-{a_h2})"),
    ("dE_dh2", "chain the two", "∂E_total/∂h2 = ∂E_total/∂a_h2 · ∂a_h2/∂h2", "={dE_da_h2}*{da_h2_dh2}"),
    ("dE_dw3", "w3 multiplies i1 in h2", "∂E_total/∂w3 = ∂E_total/∂h2 · i1", "={dE_dh2}*{i1}"),
    ("dE_dw4", "w4 multiplies i2 in h2", "∂E_total/∂w4 = ∂E_total/∂h2 · i2", "={dE_dh2}*{i2}"),
    ("Update (eta of the first rate sheet)", None, None, None),
] + [
    (f"{w}_new", f"{w} for iteration 1: a step against its gradient",
     f"{w} ← {w} − eta · ∂E_total/∂{w}", f"={{{w}}}-{{eta}}*{{dE_d{w}}}")
    for w in WEIGHTS
]


def _derivation_sheet(ws, formats, eta, rows):
    first = quote_sheetname(sheet_name(eta))
    ws.write_string("A1", f"Backpropagation at iteration 0, one chain-rule link per row "
                          f"(live values; rate sheet: {sheet_name(eta)})", formats.title)
    ws.write_string("A2", "Column D computes from the Inputs sheet (Inputs!$B$4 is i1, ... see "
                          "there); column E is the same quantity on the rate sheet; column F is "
                          "Python's value (backprop/network.py) for the inputs the file was written with.")
    _header(ws, formats, HEADER_ROW, ["quantity", "in words", "chain rule", "value (formula)",
                                      f"on sheet {sheet_name(eta)}", "Python", "|D − F|"])
    python = {**rows[0].forward._asdict(), **rows[0].backward._asdict()}
    python.update({f"{w}_new": value for w, value in zip(WEIGHTS, rows[1].weights)})
    cells = {"eta": f"{first}!{ETA_CELL}", **INPUT_CELL}
    precise, difference = formats.number[PRECISE_FORMAT], formats.number[DIFFERENCE_FORMAT]
    row = HEADER_ROW + 1
    for name, words, symbols, formula in DERIVATION:
        if words is None:
            ws.write_string(f"A{row}", name, formats.bold)
            row += 1
            continue
        value = python[name]
        ws.write_string(f"A{row}", name)
        ws.write_string(f"B{row}", words)
        ws.write_string(f"C{row}", symbols)
        ws.write_formula(f"D{row}", formula.format(**cells), precise, value)
        cells[name] = f"D{row}"
        if name in COLUMN:
            ws.write_formula(f"E{row}", f"={first}!{COLUMN[name]}{row_of(0)}", precise, value)
        elif name.endswith("_new"):
            ws.write_formula(f"E{row}", f"={first}!{COLUMN[name[:-4]]}{row_of(1)}", precise, value)
        ws.write_number(f"F{row}", value, precise)
        ws.write_formula(f"G{row}", f"=ABS(D{row}-F{row})", difference, 0)
        row += 1
    ws.freeze_panes(f"A{HEADER_ROW + 1}")
    for col, width in zip("ABCDEFG", (12, 44, 52, 18, 18, 18, 10)):
        ws.set_column(f"{col}:{col}", width)


def _compare_sheet(wb, ws, formats, runs):
    ws.write_string("A1", "E_total against iteration, one column per learning rate", formats.title)
    _header(ws, formats, HEADER_ROW, ["iteration"] + [sheet_name(eta) for eta in runs])
    iterations = max(len(rows) for rows in runs.values()) - 1
    error = formats.number[ERROR_FORMAT]
    for n in range(iterations + 1):
        ws.write_number(row_of(n) - 1, 0, n)
    for col, (eta, rows) in enumerate(runs.items(), start=1):
        source = quote_sheetname(sheet_name(eta))
        for row in rows:
            r = row_of(row.iteration)
            ws.write_formula(r - 1, col, f"={source}!{COLUMN['E_total']}{r}", error,
                             row.forward.E_total)
    ws.freeze_panes(f"B{FIRST_ROW}")
    ws.set_column(0, len(runs), 13)

    chart = wb.add_chart({"type": "line"})
    last = row_of(iterations) - 1  # zero-based, as XlsxWriter's lists want
    for col in range(1, len(runs) + 1):
        chart.add_series({
            "name": ["Compare", HEADER_ROW - 1, col],
            "categories": ["Compare", FIRST_ROW - 1, 0, last, 0],
            "values": ["Compare", FIRST_ROW - 1, col, last, col],
            "line": {"width": 1.5},
        })
    chart.set_title({"name": "E_total against iteration"})
    chart.set_x_axis({"name": "iteration", "interval_unit": max(1, iterations // 10)})
    chart.set_y_axis({"name": "E_total (log scale)", "log_base": 10})
    chart.set_size({"width": 832, "height": 454})
    ws.insert_chart(HEADER_ROW - 1, len(runs) + 2, chart)


def _check_sheet(ws, formats, runs):
    """Python's values beside the formulas', and the inputs Python's values hold for.

    A line is compared only while every input it depends on is the one Python
    used; after an edit it says so instead of reporting a mismatch.
    """
    precise, difference = formats.number[PRECISE_FORMAT], formats.number[DIFFERENCE_FORMAT]
    ws.write_string("A1", "Check: Python's values (backprop/network.py) beside the formulas' values",
                    formats.title)
    ws.write_string("A2", "Python's values hold for the inputs in column B of the first table: "
                          "those the file was written with. Edit one and the lines that depend on "
                          "it are not compared, since Python never ran with your value; "
                          "python -m backprop --rates ... writes a workbook for other rates.")
    ws.write_string("A3", "verdict", formats.bold)

    # The inputs Python used, beside the workbook's current ones.
    table = 5
    ws.write_string(f"A{table - 1}", "Python's values hold for these inputs (column B):", formats.bold)
    _header(ws, formats, table, ["input", "Python used", "in the workbook now", "same?"])
    row = table + 1
    for symbol, value, _ in INPUT_ROWS:
        _input_line(ws, formats, row, symbol, value, f"={INPUT_CELL[symbol]}")
        row += 1
    shared = f"$D${table + 1}:$D${row - 1}"
    rate_row = {}
    for eta in runs:
        rate_row[eta] = row
        _input_line(ws, formats, row, f"eta on sheet {sheet_name(eta)}", eta,
                    f"={quote_sheetname(sheet_name(eta))}!{ETA_CELL}")
        row += 1
    inputs = f"$D${table + 1}:$D${row - 1}"

    lines = row + 1
    _header(ws, formats, lines, ["sheet", "iteration", "quantity", "Python", "formula",
                                 "|difference|", "status"])
    first = row = lines + 1
    for eta, rows in runs.items():
        source = quote_sheetname(sheet_name(eta))
        last = rows[-1]
        checks = [("E_total", 0, rows[0].forward.E_total),
                  ("E_total", last.iteration, last.forward.E_total),
                  ("w1", last.iteration, last.weights[0]),
                  ("w8", last.iteration, last.weights[7]),
                  ("dE_dw1", last.iteration, last.backward.dE_dw1),
                  ("dE_dw5", last.iteration, last.backward.dE_dw5)]
        for quantity, n, value in checks:
            ws.write_string(f"A{row}", sheet_name(eta))
            ws.write_number(f"B{row}", n)
            ws.write_string(f"C{row}", quantity)
            ws.write_number(f"D{row}", value, precise)
            ws.write_formula(f"E{row}", f"={source}!{COLUMN[quantity]}{row_of(n)}", precise, value)
            ws.write_formula(f"F{row}", f"=ABS(D{row}-E{row})", difference, 0)
            ws.write_formula(
                f"G{row}",
                f'=IF(AND($D${rate_row[eta]}="same",COUNTIF({shared},"EDITED")=0),'
                f'IF(F{row}<{TOLERANCE:.9f},"agrees","MISMATCH"),'
                f'"not compared: an input was edited")',
                None, "agrees")
            row += 1
    ws.write_formula(
        "B3",
        f'=IF(COUNTIF($G${first}:$G${row - 1},"MISMATCH")>0,'
        f'"MISMATCH: a formula disagrees with Python for the inputs Python used",'
        f'IF(COUNTIF({inputs},"EDITED")>0,'
        f'"EDITED: some inputs differ from those Python used (table below), so lines that '
        f'depend on them are not compared; the rest agree to {TOLERANCE:g}",'
        f'"OK: every value agrees with Python to {TOLERANCE:g}"))',
        formats.bold, f"OK: every value agrees with Python to {TOLERANCE:g}")
    ws.freeze_panes("A4")
    for col, width in zip("ABCDEFG", (22, 16, 18, 18, 18, 12, 30)):
        ws.set_column(f"{col}:{col}", width)


def _input_line(ws, formats, row, label, value, now):
    precise = formats.number[PRECISE_FORMAT]
    ws.write_string(f"A{row}", label)
    ws.write_number(f"B{row}", value, precise)
    ws.write_formula(f"C{row}", now, precise, value)
    ws.write_formula(f"D{row}", f'=IF(C{row}=B{row},"same","EDITED")', None, "same")
