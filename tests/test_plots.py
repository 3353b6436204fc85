"""plots.py: the model's layer table and the notebook's figures, each shown once in Jupyter."""

import nbformat
import pytest
import torch
from nbclient import NotebookClient

import plots
import utils


def test_model_summary_leaves_the_model_where_it_is(capsys):
    from model import OptimizedNet

    model = OptimizedNet().to(memory_format=torch.channels_last)
    plots.model_summary(model, torch.device("cpu"))
    assert "Total params: 19,018" in capsys.readouterr().out
    assert next(model.parameters()).device.type == "cpu" and model.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)



def test_accuracy_axis_shows_a_one_epoch_run_at_95_percent():
    history = [dict(epoch=1, lr=0.1, train_loss=0.4, train_acc=88.0, test_loss=0.2, test_acc=95.0, seconds=1.0)]
    figure = plots.plot_history(history)
    accuracy_axis = figure.axes[1]
    low, high = accuracy_axis.get_ylim()
    assert low < 88.0 and high == 100
    assert 1 in accuracy_axis.get_xticks()


def test_accuracy_axis_ticks_every_epoch():
    history = [dict(epoch=e, lr=0.1, train_loss=0.1, train_acc=99.0, test_loss=0.02, test_acc=99.5, seconds=1.0) for e in range(1, 9)]
    ticks = plots.plot_history(history).axes[1].get_xticks()
    assert set(range(1, 9)) <= set(ticks)


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_plot_samples_works_for_both_pipelines(tiny_mnist, pipeline):
    recipe = dict(utils.RECIPE, pipeline=pipeline, batch_size=64)
    train_loader, _ = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    figure = plots.plot_samples(train_loader, count=5)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert len(titles) == 15 and titles[5].endswith("aug.")


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_plot_misclassified_shows_the_wrong_ones(tiny_mnist, pipeline):
    recipe = dict(utils.RECIPE, pipeline=pipeline)
    _, test_loader = utils.get_data_loaders(str(tiny_mnist), torch.device("cpu"), recipe)
    targets = torch.cat([labels for _, labels in test_loader])
    predictions = targets.clone()
    predictions[[3, 7]] = (targets[[3, 7]] + 1) % 10
    figure = plots.plot_misclassified(test_loader, predictions, targets)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == [f"true {targets[i]} / pred {(targets[i] + 1) % 10}" for i in (3, 7)]


def test_confusion_matrix_counts_are_readable_on_dark_cells():
    targets = torch.tensor([3] * 50 + [5] * 4 + [1])
    predictions = torch.tensor([8] * 40 + [3] * 10 + [6] * 4 + [1])
    figure = plots.plot_confusion_matrix(predictions, targets)
    colors = {text.get_text(): text.get_color() for text in figure.axes[0].texts}
    assert colors["40"] == "white" and colors["4"] == "black" and colors["10"] == "gray"


def test_each_figure_is_shown_once_with_its_alt_text_with_or_without_a_semicolon(root):
    history = [dict(epoch=1, lr=0.1, train_loss=0.5, train_acc=90.0, test_loss=0.2, test_acc=95.0, seconds=1.0)]
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"import plots\nhistory = {history!r}"),
        nbformat.v4.new_code_cell("plots.plot_history(history)"),
        nbformat.v4.new_code_cell("plots.plot_history(history);"),
        nbformat.v4.new_code_cell("figure = plots.plot_history(history)\nfigure"),
    ])
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    for cell in notebook.cells[1:]:
        figures = [output for output in cell.outputs if output.output_type == "display_data"]
        assert len(figures) == 1, cell.source
        assert "final test accuracy 95.00%" in figures[0].data["text/html"]  # the alt text
