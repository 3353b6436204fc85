"""The Excel workbook: every number on the rate sheets is a live formula.

Sheets: Inputs (named cells), Derivation (the chain rule at iteration 0),
one sheet per learning rate, Compare (a line chart of E_total), Check
(Python's values beside the formulas' values).
"""

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName

from cli import save_atomically
from .network import INITIAL_WEIGHTS, INPUTS, TARGETS

WEIGHTS = [f"w{k}" for k in range(1, 9)]
FORWARD = ["h1", "a_h1", "h2", "a_h2", "o1", "a_o1", "o2", "a_o2", "E1", "E2", "E_total"]
GRADIENTS = [f"dE_dw{k}" for k in range(1, 9)]
COLUMNS = ["iteration"] + WEIGHTS + FORWARD + GRADIENTS
COLUMN = {name: get_column_letter(k) for k, name in enumerate(COLUMNS, start=1)}

ETA_CELL = "$B$1"      # on every rate sheet, named `eta` for that sheet only
HEADER_ROW = 3
FIRST_ROW = 4          # iteration 0
TOLERANCE = 1e-9       # what the Check sheet calls agreement

# i1, T1, W1 are cell addresses, so a formula reading "i1" would read cell I1.
INPUT_NAMES = {"i1": "in_1", "i2": "in_2", "t1": "target_1", "t2": "target_2"}
WEIGHT_NAMES = {w: f"init_{w}" for w in WEIGHTS}

BOLD = Font(bold=True)
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
VALUE_FORMAT = "0.000000"
ERROR_FORMAT = "0.00000000"
GRADIENT_FORMAT = "0.0000E+00"


def sheet_name(eta):
    return f"eta {eta!r}"


def row_of(iteration):
    return FIRST_ROW + iteration


def build_workbook(runs):
    """runs: {eta: rows from network.train}, in the order the sheets should appear."""
    if not runs:
        raise ValueError("need at least one learning rate")
    wb = Workbook()
    wb.calculation.fullCalcOnLoad = True  # no cached values: make the reader compute
    _inputs_sheet(wb, wb.active)
    first_eta = next(iter(runs))
    derivation = wb.create_sheet("Derivation")
    for eta, rows in runs.items():
        _rate_sheet(wb.create_sheet(sheet_name(eta)), eta, len(rows) - 1)
    _derivation_sheet(derivation, first_eta, runs[first_eta])
    _compare_sheet(wb.create_sheet("Compare"), runs)
    _check_sheet(wb.create_sheet("Check"), runs)
    return wb


def write_workbook(path, runs):
    """Build the workbook and save it to path, whole or not at all."""
    wb = build_workbook(runs)
    save_atomically(path, wb.save)


def _title(ws, text):
    ws["A1"] = text
    ws["A1"].font = Font(bold=True, size=13)


def _header(ws, row, labels):
    for col, label in enumerate(labels, start=1):
        cell = ws.cell(row=row, column=col, value=label)
        cell.font = BOLD
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", wrap_text=True)


def _inputs_sheet(wb, ws):
    ws.title = "Inputs"
    _title(ws, "Inputs, targets and initial weights: change them here, every sheet follows")
    ws["A2"] = ("Formulas use the names in column C. Not i1, t1, w1: those are cell "
                "addresses (column I, T, W, row 1), so the names carry a prefix or suffix.")
    _header(ws, HEADER_ROW, ["quantity", "value", "name in formulas", "meaning"])
    entries = [
        ("i1", INPUTS[0], INPUT_NAMES["i1"], "input 1"),
        ("i2", INPUTS[1], INPUT_NAMES["i2"], "input 2"),
        ("t1", TARGETS[0], INPUT_NAMES["t1"], "target for output 1"),
        ("t2", TARGETS[1], INPUT_NAMES["t2"], "target for output 2"),
    ] + [(w, value, WEIGHT_NAMES[w], f"{w} at iteration 0")
         for w, value in zip(WEIGHTS, INITIAL_WEIGHTS)]
    for row, (symbol, value, name, meaning) in enumerate(entries, start=HEADER_ROW + 1):
        ws.cell(row=row, column=1, value=symbol)
        value_cell = ws.cell(row=row, column=2, value=value)
        value_cell.fill = INPUT_FILL
        ws.cell(row=row, column=3, value=name)
        ws.cell(row=row, column=4, value=meaning)
        wb.defined_names[name] = DefinedName(name, attr_text=f"Inputs!$B${row}")
    for col, width in zip("ABCD", (10, 12, 18, 24)):
        ws.column_dimensions[col].width = width


def _rate_sheet(ws, eta, iterations):
    c = COLUMN
    ws["A1"] = "eta"
    ws["A1"].font = BOLD
    ws[ETA_CELL] = eta
    ws[ETA_CELL].fill = INPUT_FILL
    ws[ETA_CELL].font = BOLD
    ws["C1"] = ("<- learning rate, named eta on this sheet only: type another "
                "value and the whole sheet recalculates")
    # Sheet-scoped (localSheetId), so every rate sheet has its own `eta`.
    ws.defined_names["eta"] = DefinedName("eta", attr_text=f"{quote_sheetname(ws.title)}!{ETA_CELL}")
    groups = {"w1": "weights: row above minus eta * its gradient",
              "h1": "forward pass (this row's weights)",
              "E1": "error", "dE_dw1": "gradients dE_total/dw (this row)"}
    for name, label in groups.items():
        ws[f"{c[name]}2"] = label
        ws[f"{c[name]}2"].font = Font(italic=True)
    _header(ws, HEADER_ROW, COLUMNS)

    for n in range(iterations + 1):
        r = row_of(n)
        ws[f"{c['iteration']}{r}"] = n
        for w in WEIGHTS:
            if n == 0:
                formula = f"={WEIGHT_NAMES[w]}"
            else:
                grad = "dE_d" + w
                formula = f"={c[w]}{r - 1}-eta*{c[grad]}{r - 1}"
            ws[f"{c[w]}{r}"] = formula
        for name, formula in _row_formulas(r).items():
            ws[f"{c[name]}{r}"] = formula
        for name in COLUMNS[1:]:
            ws[f"{c[name]}{r}"].number_format = (
                GRADIENT_FORMAT if name.startswith("dE_")
                else ERROR_FORMAT if name.startswith("E") else VALUE_FORMAT)

    ws.freeze_panes = f"B{FIRST_ROW}"
    ws.column_dimensions["A"].width = 9
    for name in COLUMNS[1:]:
        ws.column_dimensions[c[name]].width = 11
    # Printing (and the screenshot) shows the first rows on one landscape page.
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"


def _row_formulas(r):
    """Forward pass, error and gradients of row r, from that row's weights."""
    def at(name):
        return f"{COLUMN[name]}{r}"
    i1, i2, t1, t2 = (INPUT_NAMES[k] for k in ("i1", "i2", "t1", "t2"))
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


# (name, in words, in symbols, formula): {x} is the Derivation cell of x.
DERIVATION = [
    ("Forward pass", None, None, None),
    ("h1", "weighted sum into hidden neuron 1", "h1 = w1·i1 + w2·i2", "=init_w1*in_1+init_w2*in_2"),
    ("a_h1", "squashed by the sigmoid", "a_h1 = σ(h1) = 1 / (1 + e^(−h1))", "=1/(1+EXP(-{h1}))"),
    ("h2", "weighted sum into hidden neuron 2", "h2 = w3·i1 + w4·i2", "=init_w3*in_1+init_w4*in_2"),
    ("a_h2", "squashed by the sigmoid", "a_h2 = σ(h2)", "=1/(1+EXP(-{h2}))"),
    ("o1", "weighted sum into output neuron 1", "o1 = w5·a_h1 + w6·a_h2", "=init_w5*{a_h1}+init_w6*{a_h2}"),
    ("a_o1", "output 1", "a_o1 = σ(o1)", "=1/(1+EXP(-{o1}))"),
    ("o2", "weighted sum into output neuron 2", "o2 = w7·a_h1 + w8·a_h2", "=init_w7*{a_h1}+init_w8*{a_h2}"),
    ("a_o2", "output 2", "a_o2 = σ(o2)", "=1/(1+EXP(-{o2}))"),
    ("Error", None, None, None),
    ("E1", "half the squared miss of output 1", "E1 = ½·(t1 − a_o1)²", "=0.5*(target_1-{a_o1})^2"),
    ("E2", "half the squared miss of output 2", "E2 = ½·(t2 − a_o2)²", "=0.5*(target_2-{a_o2})^2"),
    ("E_total", "what gradient descent makes small", "E_total = E1 + E2", "={E1}+{E2}"),
    ("Output layer: w5 .. w8", None, None, None),
    ("dE_da_o1", "only E1 depends on a_o1", "∂E_total/∂a_o1 = −(t1 − a_o1)", "=-(target_1-{a_o1})"),
    ("da_o1_do1", "slope of the sigmoid, from its output", "∂a_o1/∂o1 = a_o1·(1 − a_o1)", "={a_o1}*(1-{a_o1})"),
    ("dE_do1", "chain the two", "∂E_total/∂o1 = ∂E_total/∂a_o1 · ∂a_o1/∂o1", "={dE_da_o1}*{da_o1_do1}"),
    ("dE_dw5", "w5 multiplies a_h1 in o1", "∂E_total/∂w5 = ∂E_total/∂o1 · ∂o1/∂w5 = ∂E_total/∂o1 · a_h1", "={dE_do1}*{a_h1}"),
    ("dE_dw6", "w6 multiplies a_h2 in o1", "∂E_total/∂w6 = ∂E_total/∂o1 · a_h2", "={dE_do1}*{a_h2}"),
    ("dE_da_o2", "only E2 depends on a_o2", "∂E_total/∂a_o2 = −(t2 − a_o2)", "=-(target_2-{a_o2})"),
    ("da_o2_do2", "slope of the sigmoid, from its output", "∂a_o2/∂o2 = a_o2·(1 − a_o2)", "={a_o2}*(1-{a_o2})"),
    ("dE_do2", "chain the two", "∂E_total/∂o2 = ∂E_total/∂a_o2 · ∂a_o2/∂o2", "={dE_da_o2}*{da_o2_do2}"),
    ("dE_dw7", "w7 multiplies a_h1 in o2", "∂E_total/∂w7 = ∂E_total/∂o2 · a_h1", "={dE_do2}*{a_h1}"),
    ("dE_dw8", "w8 multiplies a_h2 in o2", "∂E_total/∂w8 = ∂E_total/∂o2 · a_h2", "={dE_do2}*{a_h2}"),
    ("Hidden layer: w1 .. w4", None, None, None),
    ("dE_da_h1", "a_h1 feeds o1 (via w5) and o2 (via w7): add both paths",
     "∂E_total/∂a_h1 = ∂E_total/∂o1 · w5 + ∂E_total/∂o2 · w7", "={dE_do1}*init_w5+{dE_do2}*init_w7"),
    ("da_h1_dh1", "slope of the sigmoid", "∂a_h1/∂h1 = a_h1·(1 − a_h1)", "={a_h1}*(1-{a_h1})"),
    ("dE_dh1", "chain the two", "∂E_total/∂h1 = ∂E_total/∂a_h1 · ∂a_h1/∂h1", "={dE_da_h1}*{da_h1_dh1}"),
    ("dE_dw1", "w1 multiplies i1 in h1", "∂E_total/∂w1 = ∂E_total/∂h1 · i1", "={dE_dh1}*in_1"),
    ("dE_dw2", "w2 multiplies i2 in h1", "∂E_total/∂w2 = ∂E_total/∂h1 · i2", "={dE_dh1}*in_2"),
    ("dE_da_h2", "a_h2 feeds o1 (via w6) and o2 (via w8): add both paths",
     "∂E_total/∂a_h2 = ∂E_total/∂o1 · w6 + ∂E_total/∂o2 · w8", "={dE_do1}*init_w6+{dE_do2}*init_w8"),
    ("da_h2_dh2", "slope of the sigmoid", "∂a_h2/∂h2 = a_h2·(1 − a_h2)", "={a_h2}*(1-{a_h2})"),
    ("dE_dh2", "chain the two", "∂E_total/∂h2 = ∂E_total/∂a_h2 · ∂a_h2/∂h2", "={dE_da_h2}*{da_h2_dh2}"),
    ("dE_dw3", "w3 multiplies i1 in h2", "∂E_total/∂w3 = ∂E_total/∂h2 · i1", "={dE_dh2}*in_1"),
    ("dE_dw4", "w4 multiplies i2 in h2", "∂E_total/∂w4 = ∂E_total/∂h2 · i2", "={dE_dh2}*in_2"),
    ("Update (eta of the first rate sheet)", None, None, None),
] + [
    (f"{w}_new", f"{w} for iteration 1: a step against its gradient",
     f"{w} ← {w} − eta · ∂E_total/∂{w}", f"=init_{w}-{{eta}}*{{dE_d{w}}}")
    for w in WEIGHTS
]


def _derivation_sheet(ws, eta, rows):
    first = quote_sheetname(sheet_name(eta))
    _title(ws, f"Backpropagation at iteration 0, one chain-rule link per row "
               f"(live values; rate sheet: {sheet_name(eta)})")
    ws["A2"] = ("Column D computes from the named cells on Inputs; column E is the same "
                "quantity on the rate sheet; column F is Python's value (backprop/network.py).")
    _header(ws, HEADER_ROW, ["quantity", "in words", "chain rule", "value (formula)",
                             f"on sheet {sheet_name(eta)}", "Python", "|D − F|"])
    python = {**rows[0].forward._asdict(), **rows[0].backward._asdict()}
    python.update({f"{w}_new": value for w, value in zip(WEIGHTS, rows[1].weights)})
    cells = {"eta": f"{first}!{ETA_CELL}"}
    row = HEADER_ROW + 1
    for name, words, symbols, formula in DERIVATION:
        if words is None:
            ws.cell(row=row, column=1, value=name).font = BOLD
            row += 1
            continue
        ws.cell(row=row, column=1, value=name)
        ws.cell(row=row, column=2, value=words)
        ws.cell(row=row, column=3, value=symbols)
        ws.cell(row=row, column=4, value=formula.format(**cells))
        cells[name] = f"D{row}"
        if name in COLUMN:
            ws.cell(row=row, column=5, value=f"={first}!{COLUMN[name]}{row_of(0)}")
        elif name.endswith("_new"):
            ws.cell(row=row, column=5, value=f"={first}!{COLUMN[name[:-4]]}{row_of(1)}")
        ws.cell(row=row, column=6, value=python[name])
        ws.cell(row=row, column=7, value=f"=ABS(D{row}-F{row})")
        for col in (4, 5, 6, 7):
            ws.cell(row=row, column=col).number_format = "0.000000000000"
        ws.cell(row=row, column=7).number_format = "0.0E+00"
        row += 1
    ws.freeze_panes = f"A{HEADER_ROW + 1}"
    for col, width in zip("ABCDEFG", (12, 44, 52, 18, 18, 18, 10)):
        ws.column_dimensions[col].width = width


def _compare_sheet(ws, runs):
    _title(ws, "E_total against iteration, one column per learning rate")
    _header(ws, HEADER_ROW, ["iteration"] + [sheet_name(eta) for eta in runs])
    iterations = max(len(rows) for rows in runs.values()) - 1
    for n in range(iterations + 1):
        r = row_of(n)
        ws.cell(row=r, column=1, value=n)
        for col, (eta, rows) in enumerate(runs.items(), start=2):
            if n < len(rows):
                cell = ws.cell(row=r, column=col,
                               value=f"={quote_sheetname(sheet_name(eta))}!{COLUMN['E_total']}{r}")
                cell.number_format = ERROR_FORMAT
    ws.freeze_panes = f"B{FIRST_ROW}"
    for col in range(1, len(runs) + 2):
        ws.column_dimensions[get_column_letter(col)].width = 13

    chart = LineChart()
    chart.title = "E_total against iteration"
    chart.x_axis.title = "iteration"
    chart.y_axis.title = "E_total (log scale)"
    chart.y_axis.scaling.logBase = 10
    # openpyxl 3.1 marks axes deleted unless told otherwise; Excel then hides them.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.x_axis.tickLblSkip = max(1, iterations // 10)
    chart.height, chart.width = 12, 22
    last = row_of(iterations)
    data = Reference(ws, min_col=2, max_col=len(runs) + 1, min_row=HEADER_ROW, max_row=last)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=FIRST_ROW, max_row=last))
    for series in chart.series:
        series.smooth = False
        series.graphicalProperties.line.width = 20000  # EMU: about 1.5 pt
    ws.add_chart(chart, f"{get_column_letter(len(runs) + 3)}{HEADER_ROW}")


def _check_sheet(ws, runs):
    _title(ws, "Check: Python's values (network.py) beside the formulas' values")
    ws["A2"] = ("Python's numbers are for the rates the workbook was written with; "
                "type another eta on a rate sheet and its lines here will differ, as they should.")
    _header(ws, 4, ["sheet", "iteration", "quantity", "Python", "formula", "|difference|"])
    row = 5
    for eta, rows in runs.items():
        name = quote_sheetname(sheet_name(eta))
        last = rows[-1]
        checks = [("E_total", 0, rows[0].forward.E_total),
                  ("E_total", last.iteration, last.forward.E_total),
                  ("w1", last.iteration, last.weights[0]),
                  ("w8", last.iteration, last.weights[7]),
                  ("dE_dw1", last.iteration, last.backward.dE_dw1),
                  ("dE_dw5", last.iteration, last.backward.dE_dw5)]
        for quantity, n, value in checks:
            ws.cell(row=row, column=1, value=sheet_name(eta))
            ws.cell(row=row, column=2, value=n)
            ws.cell(row=row, column=3, value=quantity)
            ws.cell(row=row, column=4, value=value).number_format = "0.000000000000"
            ws.cell(row=row, column=5, value=f"={name}!{COLUMN[quantity]}{row_of(n)}"
                    ).number_format = "0.000000000000"
            ws.cell(row=row, column=6, value=f"=ABS(D{row}-E{row})").number_format = "0.0E+00"
            row += 1
    ws["A3"] = "largest |difference|"
    ws["A3"].font = BOLD
    ws["C3"] = f"=MAX(F5:F{row - 1})"
    ws["C3"].number_format = "0.0E+00"
    ws["D3"] = f'=IF(C3<{TOLERANCE},"OK: agree to {TOLERANCE}","MISMATCH")'
    ws["D3"].font = BOLD
    ws.freeze_panes = "A5"
    for col, width in zip("ABCDEF", (16, 10, 10, 18, 18, 12)):
        ws.column_dimensions[col].width = width
