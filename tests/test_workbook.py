"""Tests for backprop/workbook.py: layout, stored values, stable bytes, and the formulas
recalculated by two independent engines, LibreOffice headless and the Python package
`formulas`, each compared row by row with a float64 computation written out here.

The engines run on a short workbook (SHORT_ITERATIONS rows, two rates), unmodified and
after edits; LibreOffice also runs on the full-size one, and `formulas` does too in the test
marked slow (minutes: `make test-slow`). The LibreOffice tests skip when soffice is missing,
unless REQUIRE_LIBREOFFICE=1.
"""

import math
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from backprop.__main__ import DEFAULT_ITERATIONS, WORKBOOK
from backprop.libreoffice import convert_all, find_soffice
from backprop.network import RATES, train
from backprop.workbook import (COLUMN, DERIVATION, FORWARD, GRADIENTS, HEADER_ROW, INPUT_CELL,
                               WEIGHTS, row_of, sheet_name, write_workbook)

SHORT_ITERATIONS = 8
SHORT_RATES = (0.5, 2.0)
UNUSED_RATE = 0.37                 # a rate the project never writes
TOLERANCE = 1e-12                  # engines against the float64 reference, per cell
# Edits to the Inputs sheet: i2, t1 and w3 (rows 5, 6 and 10 there).
INPUT_EDITS = {"i2": 0.2, "t1": 0.1, "w3": -0.4}

I = (0.05, 0.10)                   # i1, i2
T = (0.01, 0.99)                   # t1, t2
W0 = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)


def reference(eta, iterations, edits=None):
    """Every column of every row, in float64, computed here rather than by network.py."""
    edits = edits or {}
    i1, i2 = (edits.get(k, v) for k, v in zip(("i1", "i2"), I))
    t1, t2 = (edits.get(k, v) for k, v in zip(("t1", "t2"), T))
    w = [edits.get(name, v) for name, v in zip(WEIGHTS, W0)]

    def s(x):
        return 1 / (1 + math.exp(-x))

    rows = []
    for _ in range(iterations + 1):
        w1, w2, w3, w4, w5, w6, w7, w8 = w
        h1, h2 = w1 * i1 + w2 * i2, w3 * i1 + w4 * i2
        a_h1, a_h2 = s(h1), s(h2)
        o1, o2 = w5 * a_h1 + w6 * a_h2, w7 * a_h1 + w8 * a_h2
        a_o1, a_o2 = s(o1), s(o2)
        E1, E2 = (t1 - a_o1) ** 2 / 2, (t2 - a_o2) ** 2 / 2
        d_o1, d_o2 = (a_o1 - t1) * a_o1 * (1 - a_o1), (a_o2 - t2) * a_o2 * (1 - a_o2)
        d_h1 = (d_o1 * w5 + d_o2 * w7) * a_h1 * (1 - a_h1)
        d_h2 = (d_o1 * w6 + d_o2 * w8) * a_h2 * (1 - a_h2)
        grads = [d_h1 * i1, d_h1 * i2, d_h2 * i1, d_h2 * i2,
                 d_o1 * a_h1, d_o1 * a_h2, d_o2 * a_h1, d_o2 * a_h2]
        rows.append({**dict(zip(WEIGHTS, w)),
                     **dict(zip(FORWARD, (h1, a_h1, h2, a_h2, o1, a_o1, o2, a_o2, E1, E2, E1 + E2))),
                     **dict(zip(GRADIENTS, grads))})
        w = [wk - eta * g for wk, g in zip(w, grads)]
    return rows


def assert_sheet_equals(value, sheet, rows, tolerance=TOLERANCE):
    """value(sheet, cell): what an engine computed. Every column of every row, and no more rows."""
    for n, expected in enumerate(rows):
        r = row_of(n)
        assert value(sheet, f"A{r}") == n
        for name, want in expected.items():
            got = value(sheet, f"{COLUMN[name]}{r}")
            assert isinstance(got, float) and abs(got - want) <= tolerance, (sheet, name, n, got, want)
    assert value(sheet, f"A{row_of(len(rows))}") is None


def write(path, rates, iterations):
    write_workbook(path, {eta: train(eta, iterations) for eta in rates})
    return path


def edited_copy(source, path, cells):
    """source with cells ({(sheet, cell): value}) typed over, saved by openpyxl (no stored values)."""
    wb = load_workbook(source)
    for (sheet, cell), value in cells.items():
        wb[sheet][cell] = value
    wb.save(path)
    return path


RATE_EDIT = {(sheet_name(SHORT_RATES[0]), "B1"): UNUSED_RATE}
INPUTS_EDIT = {("Inputs", INPUT_CELL[k].split("!")[1].replace("$", "")): v
               for k, v in INPUT_EDITS.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The full-size workbook, the short one, and the short one after each kind of edit."""
    folder = tmp_path_factory.mktemp("workbooks")
    full = write(folder / "full.xlsx", RATES, DEFAULT_ITERATIONS)
    short = write(folder / "short.xlsx", SHORT_RATES, SHORT_ITERATIONS)
    return {"full": full, "short": short,
            "rate_edited": edited_copy(short, folder / "rate_edited.xlsx", RATE_EDIT),
            "inputs_edited": edited_copy(short, folder / "inputs_edited.xlsx", INPUTS_EDIT)}


# --- the file, without a spreadsheet engine ----------------------------------

def test_rate_sheets_hold_live_formulas_that_read_the_rate_and_the_inputs(files):
    wb = load_workbook(files["full"])
    assert wb.sheetnames == (["Inputs", "Derivation"] + [sheet_name(eta) for eta in RATES]
                             + ["Compare", "Check"])
    for eta in RATES:
        ws = wb[sheet_name(eta)]
        assert ws["A1"].value == "eta" and ws["B1"].value == eta
        assert [cell.value for cell in ws[HEADER_ROW]] == ["iteration"] + WEIGHTS + FORWARD + GRADIENTS
        assert ws[f"{COLUMN['E_total']}{HEADER_ROW}"].value == "E_total"
        assert ws.freeze_panes == "B4"
        assert ws.max_row == row_of(DEFAULT_ITERATIONS)
        assert ws["B4"].value == "=Inputs!$B$8"                       # w1 at iteration 0
        assert ws["B5"].value == f"=B4-$B$1*{COLUMN['dE_dw1']}4"
        for w in WEIGHTS:                                             # every update reads B1
            for r in range(5, ws.max_row + 1):
                assert "-$B$1*" in ws[f"{COLUMN[w]}{r}"].value
        # inputs and targets are read from the Inputs sheet, never repeated as constants
        formulas = " ".join(str(c.value) for row in ws.iter_rows(min_row=4) for c in row)
        assert set(re.findall(r"(?<![A-Z$\d.])\d+\.\d+", formulas)) == {"0.5"}  # the 1/2 in E
        assert "Inputs!$B$5" in formulas and "Inputs!$B$7" in formulas
    inputs = wb["Inputs"]
    assert [inputs[f"A{r}"].value for r in range(4, 16)] == ["i1", "i2", "t1", "t2"] + WEIGHTS
    assert [inputs[f"B{r}"].value for r in range(4, 16)] == list(I + T + W0)


def test_formulas_use_the_common_subset(files):
    """No names in formulas (Google Sheets has no sheet-scoped ones, Numbers none at all) and
    only functions every spreadsheet program and the Python engines have."""
    with zipfile.ZipFile(files["full"]) as z:
        workbook_xml = z.read("xl/workbook.xml").decode()
        sheets = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert any(n.startswith("xl/charts/chart") for n in z.namelist())
    names = re.findall(r'<definedName name="([^"]+)"', workbook_xml)
    assert names and all(name == "_xlnm.Print_Titles" for name in names)  # print settings only
    formulas = [f for sheet in sheets for f in re.findall(r"<f>(.*?)</f>", sheet)]
    assert len(formulas) > 6 * 200 * 27
    functions = {name for f in formulas for name in re.findall(r"([A-Z][A-Z0-9.]*)\(", f)}
    assert functions == {"EXP", "ABS", "IF", "AND", "COUNTIF"}


def test_every_formula_stores_its_value(files):
    """Previewers, pandas and openpyxl(data_only=True) see numbers without recalculating."""
    formulas, values = load_workbook(files["full"]), load_workbook(files["full"], data_only=True)
    for ws in formulas.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    assert values[ws.title][cell.coordinate].value is not None, (ws.title, cell.coordinate)
    first, half = values[sheet_name(0.1)], values[sheet_name(0.5)]
    assert first[f"{COLUMN['E_total']}4"].value == pytest.approx(0.24251985734837728, abs=1e-16)
    assert first[f"{COLUMN['dE_dw5']}4"].value == pytest.approx(0.07215707291213624, abs=1e-16)
    assert half[f"{COLUMN['E_total']}{row_of(200)}"].value == pytest.approx(1.247987e-02, rel=1e-6)
    for eta in RATES:
        assert_sheet_equals(lambda sheet, cell: values[sheet][cell].value, sheet_name(eta),
                            reference(eta, DEFAULT_ITERATIONS))
    assert values["Check"]["B3"].value.startswith("OK")


def test_writing_twice_gives_identical_bytes(tmp_path):
    one = write(tmp_path / "one.xlsx", SHORT_RATES, SHORT_ITERATIONS)
    two = write(tmp_path / "two.xlsx", SHORT_RATES, SHORT_ITERATIONS)
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as z:
        assert "2024-01-01T00:00:00Z" in z.read("docProps/core.xml").decode()


def test_committed_workbook_matches_a_fresh_build(files, root):
    """backprop/output/ holds what the command writes today, formulas and stored values."""
    for data_only in (False, True):
        committed = load_workbook(root / "backprop" / "output" / WORKBOOK, data_only=data_only, read_only=True)
        fresh = load_workbook(files["full"], data_only=data_only, read_only=True)
        assert committed.sheetnames == fresh.sheetnames
        for ws in fresh.worksheets:
            theirs = committed[ws.title].iter_rows(values_only=True)
            for n, row in enumerate(ws.iter_rows(values_only=True)):
                assert next(theirs) == row, (ws.title, n + 1)
            assert next(theirs, None) is None, ws.title


def test_failed_save_leaves_no_half_written_workbook(tmp_path, monkeypatch):
    import xlsxwriter

    path = tmp_path / WORKBOOK
    write(path, [0.5], 3)
    good = path.read_bytes()

    def write_half_then_fail(self):
        with open(self.filename, "wb") as half:
            half.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(xlsxwriter.Workbook, "close", write_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        write(path, [1.0], 3)
    assert path.read_bytes() == good                       # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [WORKBOOK]  # no temporary left

    path.unlink()
    with pytest.raises(OSError, match="simulated"):
        write(path, [0.5], 3)
    assert list(tmp_path.iterdir()) == []                  # nothing at all


# --- the checks both engines must pass ---------------------------------------

def check_unmodified(value, rates, iterations):
    for eta in rates:
        assert value(sheet_name(eta), f"{COLUMN['E_total']}4") == pytest.approx(0.24251985734837728, abs=1e-15)
        assert value(sheet_name(eta), f"{COLUMN['dE_dw5']}4") == pytest.approx(0.07215707291213624, abs=1e-15)
        assert_sheet_equals(value, sheet_name(eta), reference(eta, iterations))
    assert value("Check", "B3").startswith("OK")
    derivation = {value("Derivation", f"A{r}"): r for r in range(HEADER_ROW + 1, HEADER_ROW + 60)}
    for name, words, _, _ in DERIVATION:
        if words is not None:
            r = derivation[name]
            assert value("Derivation", f"G{r}") < TOLERANCE, name       # |formula - Python|
    assert value("Derivation", f"D{derivation['E_total']}") == pytest.approx(
        reference(rates[0], 0)[0]["E_total"], abs=TOLERANCE)
    for col, eta in enumerate(rates, start=2):                         # Compare follows
        assert value("Compare", f"{'ABCDEFG'[col - 1]}{row_of(iterations)}") == pytest.approx(
            reference(eta, iterations)[-1]["E_total"], abs=TOLERANCE)


def check_rate_edited(value):
    """The first short sheet's rate became UNUSED_RATE: that sheet follows it, the other does not."""
    edited, other = sheet_name(SHORT_RATES[0]), sheet_name(SHORT_RATES[1])
    assert_sheet_equals(value, edited, reference(UNUSED_RATE, SHORT_ITERATIONS))
    assert_sheet_equals(value, other, reference(SHORT_RATES[1], SHORT_ITERATIONS))
    # Derivation's update rows use the first sheet's rate
    new_w1 = reference(UNUSED_RATE, 1)[1]["w1"]
    r = next(r for r in range(4, 60) if value("Derivation", f"A{r}") == "w1_new")
    assert value("Derivation", f"D{r}") == pytest.approx(new_w1, abs=TOLERANCE)
    assert value("Derivation", f"E{r}") == pytest.approx(new_w1, abs=TOLERANCE)
    check = check_sheet(value)
    assert check["verdict"].startswith("EDITED")
    assert check["inputs"][f"eta on sheet {edited}"] == "EDITED"
    assert all(check["inputs"][k] == "same" for k in check["inputs"] if k != f"eta on sheet {edited}")
    assert {check["lines"][k] for k in check["lines"] if k[0] == edited} == {"not compared: an input was edited"}
    assert {check["lines"][k] for k in check["lines"] if k[0] == other} == {"agrees"}


def check_inputs_edited(value):
    for eta in SHORT_RATES:
        assert_sheet_equals(value, sheet_name(eta), reference(eta, SHORT_ITERATIONS, INPUT_EDITS))
    r = next(r for r in range(4, 60) if value("Derivation", f"A{r}") == "dE_dw1")
    assert value("Derivation", f"D{r}") == pytest.approx(
        reference(SHORT_RATES[0], 0, INPUT_EDITS)[0]["dE_dw1"], abs=TOLERANCE)
    check = check_sheet(value)
    assert check["verdict"].startswith("EDITED")
    assert {k for k, v in check["inputs"].items() if v == "EDITED"} == set(INPUT_EDITS)
    assert set(check["lines"].values()) == {"not compared: an input was edited"}


def check_sheet(value):
    """The Check sheet as {verdict, inputs: {input: same/EDITED}, lines: {(sheet, it, qty): status}}."""
    inputs, lines = {}, {}
    r = 6
    while value("Check", f"A{r}") is not None:
        inputs[value("Check", f"A{r}")] = value("Check", f"D{r}")
        r += 1
    assert value("Check", f"G{r + 1}") == "status"
    r += 2
    while value("Check", f"A{r}") is not None:
        lines[(value("Check", f"A{r}"), value("Check", f"B{r}"), value("Check", f"C{r}"))] = \
            value("Check", f"G{r}")
        r += 1
    assert len(lines) == 6 * len(SHORT_RATES) and "MISMATCH" not in lines.values()
    return {"verdict": value("Check", "B3"), "inputs": inputs, "lines": lines}


# --- LibreOffice --------------------------------------------------------------

def require_soffice():
    if find_soffice() is None:
        reason = ("LibreOffice (soffice) is not on PATH; install libreoffice-calc-nogui "
                  "to check the workbook's formulas")
        if os.environ.get("REQUIRE_LIBREOFFICE") == "1":
            pytest.fail(reason + " (REQUIRE_LIBREOFFICE=1)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def libreoffice(files, tmp_path_factory):
    """Every file as LibreOffice computes it (one start of soffice), read for values."""
    require_soffice()
    import xlsxwriter

    folder = tmp_path_factory.mktemp("libreoffice")
    # A formula whose stored value is wrong: proves LibreOffice recalculates.
    poisoned = xlsxwriter.Workbook(folder / "poisoned.xlsx")
    poisoned.add_worksheet().write_formula("A1", "=1+1", None, 5)
    poisoned.close()
    names = list(files) + ["poisoned"]
    paths = list(files.values()) + [folder / "poisoned.xlsx"]
    converted = convert_all(paths, "xlsx", folder / "out")
    return {name: load_workbook(path, data_only=True) for name, path in zip(names, converted)}


def reader(wb):
    return lambda sheet, cell: wb[sheet][cell].value


def test_libreoffice_recalculates_rather_than_reading_stored_values(libreoffice):
    assert libreoffice["poisoned"].active["A1"].value == 2


def test_libreoffice_full_workbook_equals_reference_and_stored_values(libreoffice, files):
    value = reader(libreoffice["full"])
    check_unmodified(value, RATES, DEFAULT_ITERATIONS)
    assert value(sheet_name(0.5), f"{COLUMN['E_total']}{row_of(200)}") == pytest.approx(1.247987e-02, rel=1e-6)
    stored = load_workbook(files["full"], data_only=True)
    for ws in stored.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                theirs = libreoffice["full"][ws.title][cell.coordinate].value
                if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
                    assert abs(theirs - cell.value) <= TOLERANCE, (ws.title, cell.coordinate)
                else:
                    assert theirs == cell.value, (ws.title, cell.coordinate)


def test_libreoffice_short_workbook(libreoffice):
    check_unmodified(reader(libreoffice["short"]), SHORT_RATES, SHORT_ITERATIONS)


def test_libreoffice_after_editing_a_rate(libreoffice):
    check_rate_edited(reader(libreoffice["rate_edited"]))


def test_libreoffice_after_editing_inputs_targets_and_weights(libreoffice):
    check_inputs_edited(reader(libreoffice["inputs_edited"]))


# --- the Python engine `formulas` ----------------------------------------------

def formulas_engine(path):
    """compute(inputs): value(sheet, cell) for the workbook as the `formulas` package computes it,
    after typing inputs ({(sheet, cell): value}) over its cells. Loads the file once."""
    import formulas

    model = formulas.ExcelModel().loads(str(path)).finish()
    book = Path(path).name

    def compute(inputs=None):
        inputs = {f"'[{book}]{sheet.upper()}'!{cell}": v for (sheet, cell), v in (inputs or {}).items()}
        cells = {}
        for name, ranges in model.calculate(inputs=inputs).items():
            match = re.fullmatch(r"'\[.+\](.+)'!([A-Z]+\d+)", name)
            if match:
                cells[match[1], match[2]] = plain(ranges.value[0][0])
        return lambda sheet, cell: cells.get((sheet.upper(), cell))

    return compute


def plain(v):
    """A `formulas` result as openpyxl would read it: float, str, bool or None (empty)."""
    if isinstance(v, str) and type(v) is not str:   # a schedula token: empty, or an error
        return None if v == "empty" else f"error {v}"
    if isinstance(v, (str, bool)):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


@pytest.fixture(scope="module")
def python_engine(files):
    """The short workbook through `formulas`: unmodified, a rate edited, inputs edited."""
    compute = formulas_engine(files["short"])
    return {"short": compute(), "rate_edited": compute(RATE_EDIT), "inputs_edited": compute(INPUTS_EDIT)}


def test_formulas_short_workbook(python_engine):
    check_unmodified(python_engine["short"], SHORT_RATES, SHORT_ITERATIONS)


def test_formulas_after_editing_a_rate(python_engine):
    check_rate_edited(python_engine["rate_edited"])


def test_formulas_after_editing_inputs_targets_and_weights(python_engine):
    check_inputs_edited(python_engine["inputs_edited"])


# --- the screenshot ------------------------------------------------------------

def test_screenshot_renders_the_workbook(files, tmp_path):
    require_soffice()
    from PIL import Image

    from backprop.screenshot import render

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not on PATH")
    png = tmp_path / "shot.png"
    render(files["full"], png, sheet_name(RATES[0]), "A1:T24", dpi=60)
    width, height = Image.open(png).size
    assert width > 2 * height > 100            # a wide strip of cells, margins cropped


# --- the full-size workbook through `formulas` (minutes: make test-slow) ------------------------

@pytest.mark.slow
def test_formulas_full_workbook_unmodified_and_after_editing_a_rate(files):
    compute = formulas_engine(files["full"])
    check_unmodified(compute(), RATES, DEFAULT_ITERATIONS)
    edited_sheet = sheet_name(0.5)
    value = compute({(edited_sheet, "B1"): UNUSED_RATE})
    assert_sheet_equals(value, edited_sheet, reference(UNUSED_RATE, DEFAULT_ITERATIONS))
    for eta in RATES:
        if sheet_name(eta) != edited_sheet:  # the other sheets keep their own rate
            assert_sheet_equals(value, sheet_name(eta), reference(eta, DEFAULT_ITERATIONS))
    assert value("Check", "B3").startswith("EDITED")
