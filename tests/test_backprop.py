"""Tests for backprop/: the gradients, bad input, the command and the sweep.

The workbook's own tests (its formulas through LibreOffice and `formulas`) are in test_workbook.py.
"""

import pytest

from backprop import network
from backprop.__main__ import ERROR_CURVES, ERROR_GRID, NETWORK, WORKBOOK, main
from backprop.network import (INITIAL_WEIGHTS, RATES, backward, check_iterations,
                              check_rate, forward, train)

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


@pytest.mark.parametrize("args", [
    ["--rates", "abc"], ["--rates", "0"], ["--rates", "-1"], ["--rates", "nan"],
    ["--rates", "inf"], ["--rates", "0.5", "0.5"], ["--iterations", "abc"],
    ["--iterations", "0"], ["--iterations", "-3"], ["--iterations", "inf"],
    ["--iterations", "2.5"],
])
def test_cli_bad_input_is_one_line_on_stderr(tmp_path, run_python, args):
    result = run_python("-m", "backprop", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2  # argparse's usage-error status, as in train.py and predict.py
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_out_under_a_file_fails_cleanly(tmp_path, run_python):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_python("-m", "backprop", "--out", blocker / "out", "--iterations", "5")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot write" in result.stderr


# --- the command's outputs (the workbook itself: test_workbook.py) -----------

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


def test_cli_prints_error_table(tmp_path, run_python):
    result = run_python("-m", "backprop", "--out", str(tmp_path), "--iterations", "100", "--rates", "0.5", "2")
    assert result.returncode == 0, result.stderr
    assert "iter 100" in result.stdout
    assert f"{train(2.0, 100)[-1].forward.E_total:13.6e}" in result.stdout
    assert result.stderr == ""  # nothing from matplotlib, openpyxl or XlsxWriter, on any supported version
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["E_total", "eta", "eta", "wrote"]


# --- the sweep ----------------------------------------------------------------

def test_sweep_prints_table_and_best_rate(capsys):
    from backprop import sweep

    assert sweep.main(["--iterations", "20", "--rates", "1", "500"]) == 0
    printed = capsys.readouterr().out
    assert "logit(0.01) = -4.595" in printed
    assert f"{train(500.0, 20)[-1].forward.E_total:10.3e}" in printed
    assert "lowest E_total after 20 iterations" in printed


def test_sweep_bad_rate_is_one_line_on_stderr(run_python):
    result = run_python("-m", "backprop.sweep", "--rates", "-2")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
