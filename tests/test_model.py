import pytest
import torch
import torch.nn as nn

import utils
from model import MODELS, RECIPES, OptimizedNet


def test_parameter_count_is_under_20k():
    params = sum(p.numel() for p in OptimizedNet().parameters() if p.requires_grad)
    assert params < 20_000


def test_has_batchnorm_dropout_1x1_gap_and_linear():
    modules = list(OptimizedNet().modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, nn.modules.dropout._DropoutNd) for m in modules)
    assert any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in modules)
    assert any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) for m in modules)
    assert any(isinstance(m, nn.Linear) for m in modules)


def test_output_is_ten_logits_per_image():
    model = OptimizedNet().eval()
    with torch.no_grad():
        output = model(torch.randn(5, 1, 28, 28))
    assert output.shape == (5, 10)
    # Logits, not log-probabilities: their exponentials need not sum to 1.
    assert not torch.allclose(output.exp().sum(dim=1), torch.ones(5))


def test_receptive_field_table_matches_the_layers():
    """The docstring's shapes are what the layers really produce."""
    model = OptimizedNet().eval()
    shapes = {}
    for name in ("conv1", "conv2", "conv3", "transition", "conv4", "conv5", "conv6", "gap"):
        getattr(model, name).register_forward_hook(lambda module, args, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for name, shape in shapes.items():
        row = next(line for line in OptimizedNet.__doc__.splitlines() if line.strip().startswith(f"| {name} "))
        assert " x ".join(map(str, shape)) in row, (name, shape, row)


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = OptimizedNet().eval()
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        assert torch.allclose(model(images.to(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_dropout_drops_five_percent_of_channels_in_training_only():
    model = OptimizedNet()
    rates = [module.p for module in model.modules() if isinstance(module, nn.Dropout2d)]
    assert rates == [0.05, 0.05, 0.05]
    torch.manual_seed(0)
    images = torch.randn(8, 1, 28, 28)
    model.train()  # BatchNorm uses batch statistics, which are the same for both calls
    assert not torch.allclose(model(images), model(images))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))


# ----------------------------------------------------------------------------------------------
# The compact family (model.MODELS / model.RECIPES)
# ----------------------------------------------------------------------------------------------

FAMILY_PARAMETERS = {"OptimizedNet": 19_018, "Net8k": 7_706, "Net6k": 5_562, "Net4k": 3_736}


def test_registry_lists_each_model_once_with_a_recipe():
    assert MODELS["OptimizedNet"] is OptimizedNet
    assert RECIPES["OptimizedNet"] == {}
    assert set(MODELS) == set(RECIPES) == set(FAMILY_PARAMETERS)
    for name, recipe in RECIPES.items():
        assert recipe.get("epochs", 8) <= 15, name
        assert set(recipe) <= set(utils.RECIPE), name  # a misspelt key would be silently ignored


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMETERS))
def test_family_parameter_counts(name):
    model = MODELS[name]()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == FAMILY_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMETERS))
def test_family_outputs_ten_logits_and_uses_batchnorm_and_gap(name):
    model = MODELS[name]().eval()
    modules = list(model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) for m in modules)
    with torch.no_grad():
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_frontier_counts_multiply_adds_per_image():
    """bench/frontier.py's hook-based count, against OptimizedNet's layers added up by hand:
    conv1 14*14*16*9 + conv2 12*12*16*16*9 + conv3 10*10*32*16*9 + transition 10*10*16*32
    + conv4 8*8*16*16*9 + conv5 6*6*24*16*9 + conv6 4*4*24*24*9 + fc 24*10."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "bench" / "frontier.py"
    spec = importlib.util.spec_from_file_location("frontier", path)
    frontier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frontier)
    assert frontier.count_macs(OptimizedNet()) == 1_227_056
    assert frontier.count_parameters(OptimizedNet()) == 19_018
