"""Smoke run of S6.ipynb on a tiny synthetic MNIST, and checks of its committed outputs."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "S6.ipynb")


def outputs_of(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def text_of(outputs, stream=None):
    return "".join(output.get("text", "") for output in outputs if stream is None or output.get("name") == stream)


def test_notebook_runs_headless_on_a_small_subset(tiny_mnist, monkeypatch):
    monkeypatch.setenv("S6_DATA_DIR", str(tiny_mnist))
    monkeypatch.setenv("S6_SUBSET", "300")
    monkeypatch.setenv("S6_EPOCHS", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()

    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    assert text_of(outputs, "stdout").count("Test set: Average loss:") == 2
    assert "Train: Loss=" in text_of(outputs, "stderr") and "Batch_id=" in text_of(outputs, "stderr")
    assert "Total params: " in text_of(outputs, "stdout")  # the torchsummary table
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 4  # samples, curves, misclassified images, confusion matrix


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
