"""Smoke run of S6.ipynb on a tiny synthetic MNIST, and checks of its committed outputs."""

import os

import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "S6.ipynb")


def outputs_of(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def text_of(outputs, stream=None):
    return "".join(output.get("text", "") for output in outputs if stream is None or output.get("name") == stream)


def test_papermill_lists_typed_parameters():
    result = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", NOTEBOOK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for parameter in ("MODEL: str", "EPOCHS: int", "DATA_DIR: str", "SUBSET: int", "SEED: int"):
        assert parameter in result.stdout


def test_notebook_runs_under_papermill_on_a_small_subset(tiny_mnist, tmp_path):
    import papermill

    output = tmp_path / "out.ipynb"
    # From another folder (tmp_path), with the project folder as the kernel's working directory.
    papermill.execute_notebook(NOTEBOOK, str(output), parameters=dict(EPOCHS=2, SUBSET=300, DATA_DIR=str(tiny_mnist)),
                               cwd=ROOT, kernel_name="python3", progress_bar=False)
    notebook = nbformat.read(output, as_version=4)

    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    assert text_of(outputs, "stdout").count("Test set: Average loss:") == 2
    assert "Train: Loss=" in text_of(outputs, "stderr") and "Batch_id=" in text_of(outputs, "stderr")
    assert "Epoch 2 Train: Loss=" in text_of(outputs, "stderr")  # the bar names its epoch
    assert "Total params: " in text_of(outputs, "stdout")  # the torchsummary table
    assert "300 training images" in text_of(outputs, "stdout")  # the parameters took effect
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 4  # samples, curves, misclassified images, confusion matrix
    assert all('alt="' in figure.data["text/html"] for figure in figures)


def test_each_figure_is_shown_once_with_or_without_a_semicolon():
    history = [dict(epoch=1, lr=0.1, train_loss=0.5, train_acc=90.0, test_loss=0.2, test_acc=95.0, seconds=1.0)]
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import utils\nhistory = {history!r}"),
        nbformat.v4.new_code_cell("utils.plot_history(history)"),
        nbformat.v4.new_code_cell("utils.plot_history(history);"),
        nbformat.v4.new_code_cell("figure = utils.plot_history(history)\nfigure"),
    ])
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    for cell in notebook.cells[1:]:
        images = [output for output in cell.outputs if "image/png" in output.get("data", {})]
        assert len(images) == 1, cell.source
        assert "final test accuracy 95.00%" in images[0].data["text/html"]  # the alt text


def test_committed_outputs_come_from_a_clean_full_run():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    assert notebook.metadata.kernelspec.name == "python3"
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code_cells)
    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    everything = nbformat.writes(notebook)
    assert ROOT not in everything and "/home/" not in everything and "/root/" not in everything
    test_lines = [line for line in text_of(outputs, "stdout").splitlines() if line.startswith("Test set:")]
    final_accuracy = float(test_lines[-1].split("(")[-1].rstrip("%)"))
    assert final_accuracy >= 99.40 and "/10000 " in test_lines[-1]


def test_committed_outputs_use_the_current_recipe():
    """Change utils.RECIPE and this fails until the notebook is run again (make notebook)."""
    import utils

    setup_output = text_of(outputs_of(nbformat.read(NOTEBOOK, as_version=4)), "stdout")
    for key, value in utils.RECIPE.items():
        assert f"  {key:16} {value}\n" in setup_output, f"the committed notebook ran with another {key}"


def test_committed_progress_output_is_short():
    """Each progress bar is saved in its last state only (make notebook coalesces the streams)."""
    outputs = outputs_of(nbformat.read(NOTEBOOK, as_version=4))
    progress = text_of(outputs, "stderr")
    assert "\r" not in progress
    assert progress.count("Train: Loss=") == text_of(outputs, "stdout").count("Test set:")  # one bar per epoch
