"""Smoke run of S6.ipynb on a tiny synthetic MNIST, and checks of its committed outputs."""

import nbformat
import pytest


def outputs_of(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def text_of(outputs, stream=None):
    return "".join(output.get("text", "") for output in outputs if stream is None or output.get("name") == stream)


@pytest.fixture(scope="module")
def notebook_path(root):
    return root / "S6.ipynb"


def figures_of(outputs):
    return [output for output in outputs if output.output_type == "display_data" and "<img " in output.data.get("text/html", "")]


def test_papermill_lists_typed_parameters(run_python, notebook_path):
    result = run_python("-m", "papermill", "--help-notebook", notebook_path)
    assert result.returncode == 0, result.stderr
    for parameter in ("MODEL: str", "EPOCHS: int", "DATA_DIR: str", "SUBSET: int", "SEED: int"):
        assert parameter in result.stdout


def test_notebook_runs_under_papermill_on_a_small_subset(tiny_mnist, tmp_path, root, notebook_path):
    import papermill

    output = tmp_path / "out.ipynb"
    # From another folder (tmp_path), with the project folder as the kernel's working directory.
    papermill.execute_notebook(str(notebook_path), str(output), parameters=dict(EPOCHS=2, SUBSET=300, DATA_DIR=str(tiny_mnist)),
                               cwd=str(root), kernel_name="python3", progress_bar=False)
    notebook = nbformat.read(output, as_version=4)

    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    assert text_of(outputs, "stdout").count("Test set: Average loss:") == 2
    assert "Train: Loss=" in text_of(outputs, "stderr") and "Batch_id=" in text_of(outputs, "stderr")
    assert "Epoch 2 Train: Loss=" in text_of(outputs, "stderr")  # the bar names its epoch
    assert "Total params: " in text_of(outputs, "stdout")  # the torchsummary table
    assert "300 training images" in text_of(outputs, "stdout")  # the parameters took effect
    figures = figures_of(outputs)
    assert len(figures) == 4  # samples, curves, misclassified images, confusion matrix
    assert all('alt="' in figure.data["text/html"] for figure in figures)


def test_committed_outputs_come_from_a_clean_full_run(root, notebook_path):
    notebook = nbformat.read(notebook_path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    assert notebook.metadata.kernelspec.name == "python3"
    assert any("parameters" in cell.metadata.get("tags", []) for cell in code_cells)
    outputs = outputs_of(notebook)
    assert not [output for output in outputs if output.output_type == "error"]
    everything = nbformat.writes(notebook)
    assert str(root) not in everything and "/home/" not in everything and "/root/" not in everything
    test_lines = [line for line in text_of(outputs, "stdout").splitlines() if line.startswith("Test set:")]
    final_accuracy = float(test_lines[-1].split("(")[-1].rstrip("%)"))
    assert final_accuracy >= 99.40 and "/10000 " in test_lines[-1]


def test_committed_outputs_use_the_current_recipe(notebook_path):
    """Change utils.RECIPE and this fails until the notebook is run again (make notebook)."""
    import utils

    setup_output = text_of(outputs_of(nbformat.read(notebook_path, as_version=4)), "stdout")
    for key, value in utils.RECIPE.items():
        assert f"  {key:16} {value}\n" in setup_output, f"the committed notebook ran with another {key}"


def test_committed_progress_output_is_short(notebook_path):
    """Each progress bar is saved in its last state only (make notebook coalesces the streams)."""
    outputs = outputs_of(nbformat.read(notebook_path, as_version=4))
    progress = text_of(outputs, "stderr")
    assert "\r" not in progress
    assert progress.count("Train: Loss=") == text_of(outputs, "stdout").count("Test set:")  # one bar per epoch


def test_committed_figures_are_stored_once_each_with_alt_text(notebook_path):
    outputs = outputs_of(nbformat.read(notebook_path, as_version=4))
    figures = figures_of(outputs)
    assert len(figures) == 4
    assert not [output for output in outputs if "image/png" in output.get("data", {})]  # no second copy as a bare PNG
    for figure in figures:
        assert figure.data["text/html"].count("data:image/png;base64,") == 1
        assert figure.data["text/plain"] and f'alt="{figure.data["text/plain"]}"' in figure.data["text/html"]
