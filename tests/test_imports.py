"""Importing the project changes nothing in the caller's process and loads no plotting library."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code):
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_utils_and_train_does_not_load_matplotlib():
    assert python("import sys, utils, train, cli; print('matplotlib' in sys.modules)") == "False"


def test_importing_backprop_plots_keeps_the_callers_backend():
    code = "import matplotlib; matplotlib.use('svg'); import backprop.plots, backprop.__main__; print(matplotlib.get_backend())"
    assert python(code) == "svg"


def test_the_classifier_does_not_import_the_teaching_package():
    assert python("import sys, utils, train, model; print(any(name.startswith('backprop') for name in sys.modules))") == "False"
