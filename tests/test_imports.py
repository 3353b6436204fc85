"""Importing the project changes nothing in the caller's process and loads only what it needs."""


def imported(run_python, code):
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_classifier_loads_no_plotting_library(run_python):
    assert imported(run_python, "import sys, utils, model, digits, plots, train, cli; print('matplotlib' in sys.modules)") == "False"


def test_importing_backprop_plots_keeps_the_callers_backend(run_python):
    code = "import matplotlib; matplotlib.use('svg'); import backprop.plots, backprop.__main__; print(matplotlib.get_backend())"
    assert imported(run_python, code) == "svg"


def test_the_classifier_does_not_import_the_teaching_package(run_python):
    code = "import sys, utils, train, model, plots, digits; print(any(name.startswith('backprop') for name in sys.modules))"
    assert imported(run_python, code) == "False"


def test_utils_and_model_stand_on_their_own(run_python):
    """Each can be copied alone into another project: neither imports another file of this one."""
    code = ("import sys, utils, model; "
            "print(sorted(name for name in sys.modules if name in {'cli', 'digits', 'plots', 'train', 'predict', 'bench'}))")
    assert imported(run_python, code) == "[]"
