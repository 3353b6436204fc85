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

BLOCK = "Conv2d BatchNorm2d ReLU"
LAYERS_RUN = {  # leaf modules in the order a training-mode forward pass runs them
    "OptimizedNet": f"{BLOCK} | {BLOCK} Dropout2d | {BLOCK} Dropout2d | Conv2d | {BLOCK} Dropout2d | {BLOCK} | {BLOCK} | AdaptiveAvgPool2d Linear",
    "Net8k": f"{BLOCK} | {BLOCK} | {BLOCK} | Conv2d | {BLOCK} | {BLOCK} | {BLOCK} | AdaptiveAvgPool2d Linear",
    "Net6k": f"{BLOCK} | {BLOCK} | {BLOCK} | Conv2d | {BLOCK} | {BLOCK} | {BLOCK} | AdaptiveAvgPool2d Linear",
    "Net4k": f"{BLOCK} | {BLOCK} | {BLOCK} | Conv2d | {BLOCK} | {BLOCK} | {BLOCK} | AdaptiveAvgPool2d Linear",
}
# model(torch.randn(2, 1, 28, 28) after torch.manual_seed(1)) in eval mode, built after torch.manual_seed(0).
FIXED_OUTPUT = {
    "OptimizedNet": [[0.0209919, 0.0160414, 0.0281845, 0.1300930, 0.1301041, 0.1591691, -0.1510362, -0.0275286, -0.0522193, -0.0685524],
                     [0.0211885, 0.0159867, 0.0281062, 0.1300592, 0.1299855, 0.1593120, -0.1511955, -0.0277719, -0.0520798, -0.0685637]],
    "Net8k": [[0.2195555, -0.2630991, 0.2125127, -0.1583589, 0.0660540, 0.2463638, -0.1650435, -0.1100115, 0.0774528, -0.1668334],
              [0.2193887, -0.2635759, 0.2124180, -0.1581424, 0.0658759, 0.2462583, -0.1650714, -0.1099721, 0.0772047, -0.1670206]],
    "Net6k": [[0.1292146, -0.1137548, -0.0483649, 0.0694626, -0.2348954, 0.0072987, 0.1297749, 0.0325362, -0.0245266, 0.1737766],
              [0.1290011, -0.1136279, -0.0481033, 0.0696340, -0.2349063, 0.0072927, 0.1299388, 0.0325430, -0.0245203, 0.1732847]],
    "Net4k": [[0.1834801, 0.2736054, -0.0523456, 0.0956576, -0.0121486, -0.2387634, 0.1297622, -0.2027426, -0.1047077, -0.1295143],
              [0.1834420, 0.2735551, -0.0527002, 0.0951732, -0.0120342, -0.2387458, 0.1290240, -0.2033464, -0.1050840, -0.1297061]],
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
