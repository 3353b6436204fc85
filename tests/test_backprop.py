"""Tests for backprop/: the gradients, the workbook's formulas, bad input, failed writes.

The LibreOffice tests skip when soffice is missing, unless REQUIRE_LIBREOFFICE=1.
"""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from openpyxl import load_workbook

from backprop import network
from backprop.__main__ import ERROR_CURVES, ERROR_GRID, NETWORK, WORKBOOK, main
from backprop.libreoffice import convert, find_soffice
from backprop.network import (INITIAL_WEIGHTS, RATES, backward, check_iterations,
                              check_rate, forward, train)
from backprop.workbook import (COLUMN, DERIVATION, FORWARD, GRADIENTS, HEADER_ROW, WEIGHTS, build_workbook,
                               row_of, sheet_name, write_workbook)

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "backprop" / "output"
WEIGHT_SETS = [
    INITIAL_WEIGHTS,
    train(2.0, 50)[-1].weights,                            # part-way through training
    (-0.7, 1.3, 0.05, -2.2, 3.1, -0.4, -1.9, 0.8),          # arbitrary signs and sizes
]


def weight_gradients(weights):
    return backward(weights, forward(weights)).weight_gradients()


# --- the maths -------------------------------------------------------------

@pytest.mark.parametrize("weights", WEIGHT_SETS)
def test_gradients_equal_autograd(weights):
    torch = pytest.importorskip("torch")  # a test-only dependency
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    i1, i2 = network.INPUTS
    t1, t2 = network.TARGETS
    a_h1 = torch.sigmoid(w[0] * i1 + w[1] * i2)
    a_h2 = torch.sigmoid(w[2] * i1 + w[3] * i2)
    a_o1 = torch.sigmoid(w[4] * a_h1 + w[5] * a_h2)
    a_o2 = torch.sigmoid(w[6] * a_h1 + w[7] * a_h2)
    E_total = 0.5 * (t1 - a_o1) ** 2 + 0.5 * (t2 - a_o2) ** 2
    E_total.backward()
    assert forward(weights).E_total == pytest.approx(E_total.item(), abs=1e-15)
    for k, (ours, theirs) in enumerate(zip(weight_gradients(weights), w.grad.tolist()), start=1):
        assert abs(ours - theirs) < 1e-12, f"dE_dw{k}: {ours} vs autograd {theirs}"


@pytest.mark.parametrize("weights", WEIGHT_SETS)
def test_gradients_equal_central_difference(weights):
    h = 1e-6
    for k, ours in enumerate(weight_gradients(weights)):
        up, down = list(weights), list(weights)
        up[k] += h
        down[k] -= h
        numeric = (forward(up).E_total - forward(down).E_total) / (2 * h)
        assert abs(ours - numeric) < 1e-8, f"dE_dw{k + 1}: {ours} vs difference {numeric}"


def test_iteration_0_equals_published_values():
    f = forward(INITIAL_WEIGHTS)
    b = backward(INITIAL_WEIGHTS, f)
    assert abs(f.E_total - 0.242519857348) < 1e-12
    assert abs(b.dE_dw5 - 0.072157072912) < 1e-12
    assert abs(b.dE_dw1 - 0.000188255667) < 1e-12


def test_hidden_gradient_sums_both_paths():
    # The classic copy-paste bug uses one path only, or w6 where w7 belongs.
    b = backward(INITIAL_WEIGHTS, forward(INITIAL_WEIGHTS))
    w5, w7 = INITIAL_WEIGHTS[4], INITIAL_WEIGHTS[6]
    assert b.dE_da_h1 == pytest.approx(b.dE_do1 * w5 + b.dE_do2 * w7, abs=1e-18)
    assert b.dE_dw1 == pytest.approx(b.dE_da_h1 * b.da_h1_dh1 * network.INPUTS[0], abs=1e-18)


def test_train_steps_against_the_gradient_and_error_falls():
    for eta in RATES:
        rows = train(eta, 100)
        assert len(rows) == 101 and rows[0].iteration == 0 and rows[0].weights == INITIAL_WEIGHTS
        assert all(later.forward.E_total < earlier.forward.E_total
                   for earlier, later in zip(rows, rows[1:]))


def test_one_step_at_eta_half_moves_each_weight_against_its_gradient():
    # w - 0.5 * dE_total/dw at iteration 0, e.g. w5: 0.4 - 0.5 * 0.07215707291213624.
    expected = (0.14990587216652995, 0.1998117443330599, 0.24988759326871193, 0.29977518653742385,
                0.3639214635439319, 0.41365462740402764, 0.5212276250463024, 0.5713846241400319)
    assert train(0.5, 1)[1].weights == pytest.approx(expected, abs=1e-15)


def test_sigmoid_does_not_overflow():
    assert network.sigmoid(-1000.0) == 0.0
    assert network.sigmoid(1000.0) == 1.0
    assert network.sigmoid(0.0) == 0.5


# --- bad input -------------------------------------------------------------

@pytest.mark.parametrize("rate", ["abc", "", None, True, 0, 0.0, -0.5, "-1",
                                  float("nan"), float("inf"), "inf", "nan"])
def test_bad_rate_is_a_value_error(rate):
    with pytest.raises(ValueError, match="learning rate must be"):
        check_rate(rate)
    with pytest.raises(ValueError, match="learning rate must be"):
        train(rate, 10)


@pytest.mark.parametrize("iterations", ["abc", "", None, True, 0, -5, 2.5, "2.5",
                                        float("nan"), float("inf"), 10 ** 9])
def test_bad_iteration_count_is_a_value_error(iterations):
    with pytest.raises(ValueError, match="iterations must be"):
        check_iterations(iterations)
    with pytest.raises(ValueError, match="iterations must be"):
        train(0.5, iterations)


def test_good_input_is_accepted():
    assert check_rate("0.5") == 0.5 and check_rate(2) == 2.0
    assert check_iterations("100") == 100 and check_iterations(100.0) == 100


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backprop", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["--rates", "abc"], ["--rates", "0"], ["--rates", "-1"], ["--rates", "nan"],
    ["--rates", "inf"], ["--rates", "0.5", "0.5"], ["--iterations", "abc"],
    ["--iterations", "0"], ["--iterations", "-3"], ["--iterations", "inf"],
    ["--iterations", "2.5"],
])
def test_cli_bad_input_is_one_line_on_stderr(tmp_path, args):
    result = run_cli("--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2  # argparse's usage-error status, as in train.py and predict.py
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_out_under_a_file_fails_cleanly(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_cli("--out", str(blocker / "out"), "--iterations", "5")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot write" in result.stderr


def test_failed_save_leaves_no_half_written_workbook(tmp_path, monkeypatch):
    import openpyxl.workbook.workbook

    path = tmp_path / WORKBOOK
    runs = {0.5: train(0.5, 3)}
    write_workbook(path, runs)
    good = path.read_bytes()

    def save_half_then_fail(self, filename):
        with open(filename, "wb") as half:
            half.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(openpyxl.workbook.workbook.Workbook, "save", save_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        write_workbook(path, {1.0: train(1.0, 3)})
    assert path.read_bytes() == good                       # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [WORKBOOK]  # no temporary left

    path.unlink()
    with pytest.raises(OSError, match="simulated"):
        write_workbook(path, runs)
    assert list(tmp_path.iterdir()) == []                  # nothing at all


# --- the workbook, without LibreOffice --------------------------------------

@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The command's outputs at its defaults, written in process."""
    out = tmp_path_factory.mktemp("backprop-out")
    assert main(["--out", str(out)]) == 0
    return out


def test_command_writes_all_outputs(outputs, capsys):
    for name in (WORKBOOK, ERROR_CURVES, ERROR_GRID, NETWORK):
        assert (outputs / name).stat().st_size > 1000
        assert (outputs / name).stat().st_size < 3 * 2 ** 20
    assert not [p for p in outputs.iterdir() if ".tmp" in p.name]


def test_cli_prints_error_table(tmp_path):
    result = run_cli("--out", str(tmp_path), "--iterations", "100", "--rates", "0.5", "2")
    assert result.returncode == 0, result.stderr
    assert "iter 100" in result.stdout
    assert f"{train(2.0, 100)[-1].forward.E_total:13.6e}" in result.stdout


def test_workbook_layout(outputs):
    wb = load_workbook(outputs / WORKBOOK)
    assert wb.sheetnames == (["Inputs", "Derivation"] + [sheet_name(eta) for eta in RATES]
                             + ["Compare", "Check"])
    for eta in RATES:
        ws = wb[sheet_name(eta)]
        assert ws["B1"].value == eta
        headers = [cell.value for cell in ws[HEADER_ROW]]
        assert headers == ["iteration"] + WEIGHTS + FORWARD + GRADIENTS
        assert ws[f"{COLUMN['E_total']}{HEADER_ROW}"].value == "E_total"
        assert ws.freeze_panes == "B4"
        assert ws.max_row - HEADER_ROW >= 101                      # iterations 0 .. >= 100
        assert ws["A4"].value == 0
        assert ws["B4"].value == "=init_w1"
        assert ws["B5"].value == f"=B4-eta*{COLUMN['dE_dw1']}4"
        for w in WEIGHTS:                                          # every update reads eta
            for r in range(5, ws.max_row + 1):
                assert "-eta*" in ws[f"{COLUMN[w]}{r}"].value
        # inputs and targets are names, never constants repeated per row
        formulas = " ".join(str(c.value) for row in ws.iter_rows(min_row=4) for c in row)
        assert set(re.findall(r"(?<![A-Z$\d.])\d+\.\d+", formulas)) == {"0.5"}  # the 1/2 in E
        assert "in_1" in formulas and "target_2" in formulas


def test_eta_is_sheet_scoped_in_the_saved_xml(outputs):
    with zipfile.ZipFile(outputs / WORKBOOK) as z:
        root = ElementTree.fromstring(z.read("xl/workbook.xml"))
        assert any(name.startswith("xl/charts/chart") for name in z.namelist())
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    sheets = [s.get("name") for s in root.find("m:sheets", ns)]
    names = root.find("m:definedNames", ns)
    etas = {int(n.get("localSheetId")): n.text for n in names if n.get("name") == "eta"}
    assert etas == {sheets.index(sheet_name(eta)): f"'{sheet_name(eta)}'!$B$1" for eta in RATES}
    workbook_wide = {n.get("name") for n in names if n.get("localSheetId") is None}
    assert {"in_1", "in_2", "target_1", "target_2"} <= workbook_wide
    assert not workbook_wide & {"i1", "i2", "t1", "t2", "w1"}      # these are cell addresses
    calc = root.find("m:calcPr", ns)
    assert calc.get("fullCalcOnLoad") == "1"


def test_committed_workbook_matches_a_fresh_build():
    """backprop/output/ holds what the command writes today, not a stale copy."""
    committed = load_workbook(COMMITTED / WORKBOOK)
    fresh = build_workbook({eta: train(eta, committed[sheet_name(RATES[0])].max_row - row_of(0))
                            for eta in RATES})
    assert committed.sheetnames == fresh.sheetnames
    for ws in fresh.worksheets:
        theirs = committed[ws.title]
        for row in ws.iter_rows():
            for cell in row:
                expected = cell.value
                if isinstance(expected, float):  # openpyxl writes floats to 16 digits
                    expected = pytest.approx(expected, rel=1e-15, abs=1e-300)
                assert theirs[cell.coordinate].value == expected, (ws.title, cell.coordinate)


# --- the workbook, recalculated by LibreOffice -------------------------------

def require_soffice():
    if find_soffice() is None:
        reason = ("LibreOffice (soffice) is not on PATH; install libreoffice-calc-nogui "
                  "to check the workbook's formulas")
        if os.environ.get("REQUIRE_LIBREOFFICE") == "1":
            pytest.fail(reason + " (REQUIRE_LIBREOFFICE=1)")
        pytest.skip(reason)


def recalculate(path, outdir):
    """The workbook as LibreOffice computes it: converted, then read for values."""
    outdir.mkdir()
    return load_workbook(convert(path, "xlsx", outdir), data_only=True)


def python_row(row):
    values = dict(zip(WEIGHTS, row.weights))
    values.update(row.forward._asdict())
    values.update(zip(GRADIENTS, row.backward.weight_gradients()))
    return values


def assert_sheet_equals_python(ws, rows):
    for row in rows:
        for name, expected in python_row(row).items():
            cell = ws[f"{COLUMN[name]}{row_of(row.iteration)}"]
            assert isinstance(cell.value, float), (ws.title, cell.coordinate, cell.value)
            assert abs(cell.value - expected) < 1e-9, (ws.title, cell.coordinate, cell.value, expected)
    last = row_of(rows[-1].iteration)
    assert ws.max_row == last or ws[f"A{last + 1}"].value is None


def test_libreoffice_values_equal_python_on_every_row(outputs, tmp_path):
    require_soffice()
    wb = recalculate(outputs / WORKBOOK, tmp_path / "recalculated")
    iterations = wb[sheet_name(RATES[0])].max_row - row_of(0)
    assert iterations >= 100
    for eta in RATES:
        assert_sheet_equals_python(wb[sheet_name(eta)], train(eta, iterations))
    assert wb["Check"]["D3"].value.startswith("OK")
    steps = [row for row in wb["Derivation"].iter_rows(min_row=HEADER_ROW + 1, values_only=True)
             if row[1] is not None]
    assert len(steps) == sum(1 for entry in DERIVATION if entry[1] is not None)
    for name, _, _, formula_value, rate_sheet_value, python_value, difference in steps:
        assert abs(formula_value - python_value) < 1e-12 and difference < 1e-12, name
        if rate_sheet_value is not None:
            assert abs(formula_value - rate_sheet_value) < 1e-12, name
    compare = wb["Compare"]
    assert compare.cell(row=row_of(iterations), column=2).value == pytest.approx(
        train(RATES[0], iterations)[-1].forward.E_total, abs=1e-9)


def test_typing_another_eta_recalculates_only_that_sheet(outputs, tmp_path):
    require_soffice()
    edited_sheet, new_eta = sheet_name(0.5), 1.5
    wb = load_workbook(outputs / WORKBOOK)
    wb[edited_sheet]["B1"] = new_eta
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)
    recalculated = recalculate(edited, tmp_path / "recalculated")
    iterations = recalculated[edited_sheet].max_row - row_of(0)
    assert_sheet_equals_python(recalculated[edited_sheet], train(new_eta, iterations))
    # `eta` is per sheet: the neighbours keep their own rates
    for eta in (0.2, 0.8):
        assert_sheet_equals_python(recalculated[sheet_name(eta)], train(eta, iterations))
    assert recalculated["Check"]["D3"].value == "MISMATCH"        # Python ran at 0.5


# --- the sweep and the screenshot -------------------------------------------

def test_sweep_prints_table_and_best_rate(capsys):
    from backprop import sweep

    assert sweep.main(["--iterations", "20", "--rates", "1", "500"]) == 0
    printed = capsys.readouterr().out
    assert "logit(0.01) = -4.595" in printed
    assert f"{train(500.0, 20)[-1].forward.E_total:10.3e}" in printed
    assert "lowest E_total after 20 iterations" in printed


def test_sweep_bad_rate_is_one_line_on_stderr():
    result = subprocess.run([sys.executable, "-m", "backprop.sweep", "--rates", "-2"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_screenshot_renders_the_workbook(outputs, tmp_path):
    require_soffice()
    import shutil

    from PIL import Image

    from backprop.screenshot import render

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not on PATH")
    png = tmp_path / "shot.png"
    render(outputs / WORKBOOK, png, sheet_name(RATES[0]), "A1:T24", dpi=60)
    width, height = Image.open(png).size
    assert width > 2 * height > 100            # a wide strip of cells, margins cropped
