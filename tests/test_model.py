"""model.py: the models' contract, layers and numbers, the registry, and model files."""

import os
import pickle

import pytest
import torch
import torch.nn as nn

import utils
from model import MODELS, RECIPES, ModelFileError, OptimizedNet, count_parameters, load_model, save_model


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

FAMILY_PARAMETERS = {"OptimizedNet": 19_018, "Net8k": 7_762, "Net6k": 5_786, "Net4k": 3_666}


def test_registry_lists_each_model_once_with_a_recipe():
    assert MODELS["OptimizedNet"] is OptimizedNet
    assert RECIPES["OptimizedNet"] == {}
    assert set(MODELS) == set(RECIPES) == set(FAMILY_PARAMETERS)
    for name, recipe in RECIPES.items():
        assert recipe.get("epochs", utils.RECIPE["epochs"]) < 20, name  # the assignment: fewer than 20 epochs
        assert set(recipe) <= set(utils.RECIPE), name  # a misspelt key would be silently ignored


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMETERS))
def test_family_parameter_counts(name):
    model = MODELS[name]()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == FAMILY_PARAMETERS[name]
    assert count_parameters(model) == FAMILY_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(FAMILY_PARAMETERS))
def test_family_outputs_ten_logits_and_uses_batchnorm_and_gap(name):
    model = MODELS[name]().eval()
    modules = list(model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) for m in modules)
    with torch.no_grad():
        assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


# ----------------------------------------------------------------------------------------------
# Each model's layers and numbers, pinned: a block that loses its ReLU, BatchNorm or dropout, or a
# layer that changes its initialisation, fails here even when the model still trains.
# ----------------------------------------------------------------------------------------------

BLOCK = "Conv2d BatchNorm2d SiLU"
SEPARABLE = "Conv2d Conv2d BatchNorm2d SiLU"  # depthwise, pointwise
SMALL = f"{BLOCK} | {SEPARABLE} | {SEPARABLE} | {SEPARABLE} | {SEPARABLE} | {SEPARABLE} | AdaptiveAvgPool2d Linear"
LAYERS_RUN = {  # leaf modules in the order a training-mode forward pass runs them
    "OptimizedNet": f"{BLOCK} | {BLOCK} Dropout2d | {BLOCK} Dropout2d | Conv2d | {BLOCK} Dropout2d | {BLOCK} | {BLOCK} | AdaptiveAvgPool2d Linear",
    "Net8k": SMALL,
    "Net6k": SMALL,
    "Net4k": SMALL,
}
# model(torch.randn(2, 1, 28, 28) after torch.manual_seed(1)) in eval mode, built after torch.manual_seed(0).
FIXED_OUTPUT = {
    "OptimizedNet": [[0.0206227, 0.0161708, 0.0285057, 0.1301694, 0.1308936, 0.1618005, -0.1511404, -0.0291916, -0.0507254, -0.0690671],
                     [0.0205353, 0.0162622, 0.0285446, 0.1301848, 0.1308702, 0.1617833, -0.1511755, -0.0292222, -0.0507081, -0.0690175]],
    "Net8k": [[0.1348385, -0.1021918, 0.1308677, -0.0160593, 0.0310519, -0.1550419, 0.1434699, -0.0017750, -0.0792859, -0.1128344],
              [0.1348359, -0.1021928, 0.1308740, -0.0160630, 0.0310464, -0.1550528, 0.1434582, -0.0017885, -0.0792796, -0.1128417]],
    "Net6k": [[-0.0015132, -0.1608874, -0.1599786, 0.1449573, 0.1414397, -0.0507912, -0.0658918, -0.0107906, 0.0773370, -0.1610585],
              [-0.0015120, -0.1608878, -0.1599681, 0.1449473, 0.1414431, -0.0508044, -0.0659055, -0.0107920, 0.0773337, -0.1610616]],
    "Net4k": [[0.1289210, -0.1263876, -0.1917502, 0.0652863, -0.0774400, -0.1029936, 0.0405990, -0.1480783, 0.1836043, -0.0183215],
              [0.1289191, -0.1263916, -0.1917446, 0.0652840, -0.0774385, -0.1030037, 0.0406025, -0.1480802, 0.1835921, -0.0183233]],
}


@pytest.mark.parametrize("name", sorted(LAYERS_RUN))
def test_the_forward_pass_runs_the_pinned_layers_in_order(name):
    model, ran = MODELS[name]().train(), []
    for module in model.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda module, args, output: ran.append(type(module).__name__))
    model(torch.zeros(2, 1, 28, 28))
    assert " ".join(ran) == " ".join(LAYERS_RUN[name].replace("|", " ").split())


@pytest.mark.parametrize("name", sorted(FIXED_OUTPUT))
def test_a_fixed_seed_gives_a_fixed_output(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    torch.manual_seed(1)
    images = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        output = model(images)
    assert torch.allclose(output, torch.tensor(FIXED_OUTPUT[name]), rtol=0, atol=1e-6), output.tolist()


# ----------------------------------------------------------------------------------------------
# Model files: save_model and load_model
# ----------------------------------------------------------------------------------------------


def trained_looking_model(seed=0):
    """OptimizedNet with random weights and BatchNorm statistics, so a lost tensor would show."""
    torch.manual_seed(seed)
    model = OptimizedNet()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def same_weights(first, second):
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_save_and_load_a_model(tmp_path):
    model = trained_looking_model()
    path = tmp_path / "digits.pt"
    save_model(model.train(), path)
    assert os.listdir(tmp_path) == ["digits.pt"]  # no temporary file left
    record = torch.load(path, map_location="cpu", weights_only=True)
    assert record["class"] == "OptimizedNet"
    loaded = load_model(path)
    assert isinstance(loaded, OptimizedNet) and not loaded.training
    assert same_weights(model, loaded) and next(loaded.parameters()).device.type == "cpu"


def test_a_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "digits.pt"
    path.write_bytes(b"the old model")

    def fail_halfway(record, file):
        open(file, "wb").write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_model(OptimizedNet(), path)
    assert os.listdir(tmp_path) == ["digits.pt"] and path.read_bytes() == b"the old model"


def test_a_plain_state_dict_loads(tmp_path):
    model = trained_looking_model(1)
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)  # what train.py --save-model wrote
    loaded = load_model(str(path), torch.device("cpu"))
    assert isinstance(loaded, OptimizedNet) and not loaded.training and same_weights(model, loaded)


def test_a_model_saved_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    import torch.serialization

    model = trained_looking_model(2)
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as patch:  # write the file as a CUDA machine would: tensors tagged cuda:0
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(model.state_dict(), path)
    if not torch.cuda.is_available():
        # torch before 2.5 re-raises the weights-only unpickler's RuntimeError, message and all, as
        # pickle.UnpicklingError; 2.5 and later let the RuntimeError through.
        expected = RuntimeError if torch.__version__ >= (2, 5) else pickle.UnpicklingError
        with pytest.raises(expected, match="CUDA"):
            torch.load(path, weights_only=True)  # the file does need mapping
    loaded = load_model(path, "cpu")
    assert same_weights(model, loaded) and next(loaded.parameters()).device.type == "cpu"


def test_unusable_model_files_name_the_file(tmp_path):
    def saved(name, content):
        path = tmp_path / name
        torch.save(content, path)
        return path

    good = OptimizedNet().state_dict()
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(os.urandom(500))
    cases = {
        tmp_path / "missing.pt": "no such model file",
        random_bytes: "not a model file",
        saved("numbers.pt", {"a": 1}): "holds no model",
        saved("function.pt", {"class": "conv_block", "state_dict": good}): "no model class",
        saved("import.pt", {"class": "nn", "state_dict": good}): "no model class",
        saved("short.pt", {key: value for key, value in list(good.items())[1:]}): "do not fit OptimizedNet",
    }
    for path, complaint in cases.items():
        with pytest.raises(ModelFileError, match=complaint) as error:
            load_model(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
