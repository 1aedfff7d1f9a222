"""VGGs from PyTorch and ONNX (issue 48), without torch: state dicts in torchvision's and timm's layouts written as
safetensors, and ONNX graphs in PyTorch's NCHW layout, each translated into vggedge's Keras VGG and verified against
its source; then a recipe runs on it as on a Keras file."""

from __future__ import annotations

import json

import numpy as np
import pytest

# VGG11, VGG13, VGG16, VGG19: convolutions per block
LAYOUTS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (4, 8, 16, 32, 32)  # VGG's 64..512 at 1/16
BATCHNORM_PARAMETERS = ("weight", "bias", "running_mean", "running_var")
SIDE = 2  # the last feature map's side: 64-pixel images, so the flatten's (C, H, W) -> (H, W, C) order matters


def torchvision_state(
    layout: str = "vgg16", batch_norm: bool = False, hidden: tuple[int, ...] = (24, 24), classes: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    """A state dict as torchvision's ``vgg16(_bn)`` names it, random weights (BN statistics too, so a translation
    that ignored them would show)."""
    rng = np.random.default_rng(seed)
    state, index, channels = {}, 0, 3
    for width, count in zip(WIDTHS, LAYOUTS[layout], strict=True):
        for _ in range(count):
            state[f"features.{index}.weight"] = rng.normal(0, (2 / (9 * channels)) ** 0.5, (width, channels, 3, 3))
            state[f"features.{index}.bias"] = rng.normal(0, 0.05, width)
            index += 1
            if batch_norm:
                state[f"features.{index}.weight"] = rng.uniform(0.5, 1.5, width)
                state[f"features.{index}.bias"] = rng.normal(0, 0.1, width)
                state[f"features.{index}.running_mean"] = rng.normal(0, 0.2, width)
                state[f"features.{index}.running_var"] = rng.uniform(0.5, 2.0, width)
                state[f"features.{index}.num_batches_tracked"] = np.array(100, dtype=np.int64)
                index += 1
            index += 1  # ReLU
            channels = width
        index += 1  # MaxPool2d
    sizes = [channels * SIDE * SIDE, *hidden, classes]
    for number, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        state[f"classifier.{3 * number}.weight"] = rng.normal(0, (2 / fan_in) ** 0.5, (fan_out, fan_in))
        state[f"classifier.{3 * number}.bias"] = rng.normal(0, 0.05, fan_out)
    return {name: value.astype(np.float32) if value.dtype != np.int64 else value for name, value in state.items()}


def save_safetensors(state: dict[str, np.ndarray], path) -> None:  # noqa: ANN001
    from safetensors.numpy import save_file

    save_file({name: np.ascontiguousarray(value) for name, value in state.items()}, str(path))


@pytest.mark.parametrize(
    ("layout", "batch_norm"), [("vgg16", False), ("vgg16", True), ("vgg11", False), ("vgg19", True)]
)
def test_a_torchvision_state_dict_is_translated_exactly(layout, batch_norm, tmp_path):
    """Every VGG depth, with and without BatchNorm2d: the blocks found from the names and shapes, and the Keras model
    answers as the same weights run with PyTorch's semantics (checked when loaded, recorded for the report)."""
    from vggedge.models.loading import load_model_file

    path = tmp_path / f"{layout}.safetensors"
    save_safetensors(torchvision_state(layout, batch_norm), path)
    baseline = load_model_file(path, None)
    translation = baseline.describe().translation
    assert translation["framework"] == "pytorch" and translation["blocks"] == list(LAYOUTS[layout])
    assert translation["max_score_difference"] <= 1e-4 and translation["top1_agreement"] == 1.0, translation
    assert ("BatchNorm2d" in translation["layout"]) == batch_norm
    assert baseline.model.input_shape == (None, 64, 64, 3) and baseline.preprocess == "torch"
    anatomy = baseline.anatomy
    assert [len(block) for block in anatomy.blocks] == list(LAYOUTS[layout]) and anatomy.head_kind == "flatten"
    assert anatomy.classes == 5 and len(anatomy.hidden) == 2 and anatomy.preprocessing


def test_the_flatten_order_is_what_the_check_catches(tmp_path):
    """The check is not a formality: the same weights with fc1 read in Keras' own (H, W, C) order, as a translation
    that forgot the permutation would, are refused in one line."""
    from vggedge.core.errors import ModelError
    from vggedge.models.foreign import verify_translation
    from vggedge.models.torch_layout import vgg_from_state_dict
    from vggedge.models.vgg_weights import keras_vgg

    weights = vgg_from_state_dict(torchvision_state())
    model = keras_vgg(weights, "torch")
    fc1 = model.get_layer("fc1")
    kernel, bias = fc1.get_weights()
    fc1.set_weights([weights.dense[0].weight.T, bias])  # the rows in the source's order, unpermuted
    assert not np.allclose(kernel, weights.dense[0].weight.T)
    with pytest.raises(ModelError, match="does not answer as its source"):
        verify_translation(model, weights, tmp_path / "x.safetensors", "torch")


def test_replaced_classifiers_timm_and_wrapped_names_are_read(tmp_path):
    """The tutorials' fine-tunes: classifier[6] replaced by a small Sequential (nested indices); a whole new
    classifier; timm's pre_logits as convolutions; DataParallel's ``module.`` prefix."""
    from vggedge.models.loading import load_model_file

    state = torchvision_state()
    last = {name: state.pop(name) for name in [n for n in state if n.startswith("classifier.6.")]}
    rng = np.random.default_rng(1)
    state["classifier.6.0.weight"] = rng.normal(0, 0.2, (7, last["classifier.6.weight"].shape[1])).astype(np.float32)
    state["classifier.6.0.bias"] = np.zeros(7, np.float32)
    state["classifier.6.3.weight"] = rng.normal(0, 0.2, (3, 7)).astype(np.float32)
    state["classifier.6.3.bias"] = np.zeros(3, np.float32)
    save_safetensors({f"module.{name}": value for name, value in state.items()}, tmp_path / "nested.safetensors")
    nested = load_model_file(tmp_path / "nested.safetensors", None)
    assert nested.anatomy.classes == 3 and len(nested.anatomy.hidden) == 3
    timm = torchvision_state(hidden=(24,), classes=4)
    fc1, fc1_bias = timm.pop("classifier.0.weight"), timm.pop("classifier.0.bias")
    timm["pre_logits.fc1.weight"] = fc1.reshape(24, WIDTHS[-1], SIDE, SIDE)  # a 2x2 conv over the feature map
    timm["pre_logits.fc1.bias"] = fc1_bias
    timm["pre_logits.fc2.weight"] = np.eye(24, dtype=np.float32).reshape(24, 24, 1, 1)
    timm["pre_logits.fc2.bias"] = np.zeros(24, np.float32)
    timm["head.fc.weight"], timm["head.fc.bias"] = timm.pop("classifier.3.weight"), timm.pop("classifier.3.bias")
    save_safetensors(timm, tmp_path / "timm.safetensors")
    read = load_model_file(tmp_path / "timm.safetensors", None)
    assert "timm" in read.translation["layout"] and read.anatomy.classes == 4
    assert read.translation["max_score_difference"] <= 1e-4


def gap_bn_state(seed: int = 5) -> dict[str, np.ndarray]:
    """A fine-tune's common head on torchvision's VGG16: ``avgpool = AdaptiveAvgPool2d(1)`` and ``classifier =
    Sequential(Linear(512, 24), BatchNorm1d(24), ReLU, Dropout, Linear(24, 3))`` at 1/16 width, with BatchNorm1d
    statistics far from the identity, so a translation that dropped or misplaced them would show."""
    rng = np.random.default_rng(seed)
    state = {name: value for name, value in torchvision_state(seed=seed).items() if name.startswith("features.")}
    state["classifier.0.weight"] = rng.normal(0, 0.3, (24, WIDTHS[-1])).astype(np.float32)
    state["classifier.0.bias"] = rng.normal(0, 0.1, 24).astype(np.float32)
    state["classifier.1.weight"] = rng.uniform(0.5, 2.0, 24).astype(np.float32)
    state["classifier.1.bias"] = rng.normal(0, 0.5, 24).astype(np.float32)
    state["classifier.1.running_mean"] = rng.normal(0, 1.0, 24).astype(np.float32)
    state["classifier.1.running_var"] = rng.uniform(0.1, 3.0, 24).astype(np.float32)
    state["classifier.1.num_batches_tracked"] = np.array(10, dtype=np.int64)
    state["classifier.4.weight"] = rng.normal(0, 0.5, (3, 24)).astype(np.float32)
    state["classifier.4.bias"] = np.zeros(3, np.float32)
    return state


def test_a_gap_head_with_batchnorm1d_is_translated_exactly_from_a_state_dict_and_its_onnx_export(tmp_path):
    """A global average pool before the classifier becomes Keras' GlobalAveragePooling2D (the model takes 224 pixels,
    VGG16's size, as the weights fix none; an ONNX file's declared size when it has one), and a BatchNorm1d right
    after a Linear is folded into it; both checked against the source's own BatchNormalization node, not the fold.
    The ONNX export reads the same, with GlobalAveragePool or with torch's ``x.mean((2, 3))`` as ReduceMean."""
    import onnx
    from onnx import helper

    from vggedge.core.errors import ModelError
    from vggedge.models.foreign import verify_translation
    from vggedge.models.loading import load_model_file
    from vggedge.models.onnx_vgg import nchw_graph
    from vggedge.models.torch_layout import vgg_from_state_dict
    from vggedge.models.vgg_weights import keras_vgg

    save_safetensors(gap_bn_state(), tmp_path / "gap_bn.safetensors")
    read = load_model_file(tmp_path / "gap_bn.safetensors", None)
    translation = read.describe().translation
    assert "global average pool" in translation["layout"] and "BatchNorm1d" in translation["layout"], translation
    assert translation["max_score_difference"] <= 1e-5 and translation["top1_agreement"] == 1.0, translation
    assert read.model.input_shape == (None, 224, 224, 3) and read.anatomy.head_kind == "gap"
    assert read.anatomy.classes == 3 and len(read.anatomy.hidden) == 1
    weights = vgg_from_state_dict(gap_bn_state())
    unfolded = keras_vgg(weights, "torch")  # the check is not a formality: the same model without its BatchNorm1d
    kernel, bias = weights.dense[0].weight.T, weights.dense[0].bias
    unfolded.get_layer("fc1").set_weights([kernel, bias])
    with pytest.raises(ModelError, match="does not answer as its source"):
        verify_translation(unfolded, weights, tmp_path / "x.safetensors", "torch")

    graph = nchw_graph(weights)
    graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 96  # an export at 96 pixels declares its size
    graph.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 96
    onnx.save(graph, str(tmp_path / "gap_bn.onnx"))
    images = np.random.default_rng(6).uniform(0, 255, (4, 96, 96, 3)).astype(np.float32)
    from_onnx = load_model_file(tmp_path / "gap_bn.onnx", None)
    assert from_onnx.model.input_shape == (None, 96, 96, 3) and from_onnx.translation["max_score_difference"] <= 1e-5
    pool = next(node for node in graph.graph.node if node.op_type == "GlobalAveragePool")
    mean = helper.make_node("ReduceMean", pool.input, pool.output, axes=[2, 3], keepdims=1)
    graph.graph.node.insert(list(graph.graph.node).index(pool), mean)
    graph.graph.node.remove(pool)
    onnx.save(graph, str(tmp_path / "mean.onnx"))
    from_mean = load_model_file(tmp_path / "mean.onnx", None)
    np.testing.assert_allclose(
        from_mean.model.predict(images, verbose=0), from_onnx.model.predict(images, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update({f"classifier.2.{n}": np.ones(24, np.float32) for n in BATCHNORM_PARAMETERS}),
            "BatchNorm1d that does not directly follow a Linear",
        ),
        (lambda s: s.update({"fc.weight": np.zeros((2, 2), np.float32)}), "outside a VGG's features"),
        (lambda s: s.pop("classifier.0.weight"), "of no Linear layer"),
        (lambda s: s.update({"features.0.weight": np.zeros((4, 3, 5, 5), np.float32)}), "a 5x5 kernel"),
        (lambda s: [s.pop(n) for n in [k for k in s if k.startswith("features.")]], "no features.N weights"),
    ],
)
def test_what_has_no_exact_translation_is_named_in_one_line(cli, tmp_path, change, message):
    state = torchvision_state()
    change(state)
    path = tmp_path / "odd.safetensors"
    save_safetensors(state, path)
    result = cli("inspect", path)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err, result.err


def test_an_onnx_file_in_pytorchs_layout_is_read_and_checked_against_itself(tmp_path):
    """An ONNX export (NCHW, Gemm with transB, logits out as torch.onnx.export leaves them) gives the same Keras
    model as the state dict it came from."""
    import onnx

    from vggedge.models.loading import load_model_file
    from vggedge.models.onnx_vgg import nchw_graph
    from vggedge.models.torch_layout import vgg_from_state_dict

    weights = vgg_from_state_dict(torchvision_state(batch_norm=True))
    graph = nchw_graph(weights)
    del graph.graph.node[-1]  # logits, as torchvision's export ends
    graph.graph.output[0].name = graph.graph.node[-1].output[0]
    onnx.save(graph, str(tmp_path / "vgg16_bn.onnx"))
    from_onnx = load_model_file(tmp_path / "vgg16_bn.onnx", None)
    assert from_onnx.translation["framework"] == "onnx" and from_onnx.translation["max_score_difference"] <= 1e-4
    save_safetensors(torchvision_state(batch_norm=True), tmp_path / "same.safetensors")
    from_state = load_model_file(tmp_path / "same.safetensors", None)
    images = np.random.default_rng(2).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(
        from_onnx.model.predict(images, verbose=0), from_state.model.predict(images, verbose=0), atol=1e-6
    )


def test_a_pytorch_checkpoint_without_torch_is_one_line(cli, tmp_path):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    path = tmp_path / "vgg16.pth"
    path.write_bytes(b"PK\x03\x04 not really")
    result = cli("inspect", path)
    assert result.code == 2 and "needs torch" in result.err and ".safetensors" in result.err, result.err


@pytest.mark.slow
def test_a_recipe_runs_on_a_translated_checkpoint_and_the_report_says_where_it_came_from(cli, tmp_path):
    """int8 on a PyTorch state dict, on five classes of photos-like folders made here: the run is ok against its
    budget and its report names the source framework and the check."""
    from PIL import Image

    data = tmp_path / "data"
    rng = np.random.default_rng(3)
    for label in range(5):
        (data / f"c{label}").mkdir(parents=True)
        for index in range(24):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / f"c{label}" / f"{index}.png")
    state = torchvision_state()
    state["classifier.6.weight"] *= 30  # confident answers: random weights otherwise give near-ties that int8 flips
    save_safetensors(state, tmp_path / "vgg16.safetensors")
    out = tmp_path / "out"
    result = cli(
        "optimize", "--recipe", "int8,fast", "--model", tmp_path / "vgg16.safetensors", "--data", data, "--out", out,
        "-q", "--runs", "1", "--eval-samples", "40", "--calibration-samples", "20", "--formats", "onnx",
        "--max-epochs", "1", "--max-drop", "100",  # random weights on random pixels: the mechanism, not accuracy
    )  # fmt: skip
    for recipe in ("int8", "fast"):
        report = json.loads((out / recipe / "report.json").read_text())
        assert report["model"]["translation"]["framework"] == "pytorch", result.err
        assert report["model"]["preprocess"] == "torch"
        assert [row["format"] for row in report["artifacts"]] == ["tflite", "onnx"]
        assert all(row["verification_agreement"] is not None for row in report["artifacts"]), report["artifacts"]
        assert "Translated from pytorch" in (out / recipe / "report.md").read_text()
        evaluation = report["model"]["translation"]["evaluation"]  # checked again on the run's own images
        assert evaluation["images"] == 40 and evaluation["top1_agreement"] == 1.0, evaluation
        assert evaluation["max_score_difference"] <= 1e-4, evaluation
        assert "On the 40 evaluation images: largest difference" in (out / recipe / "report.md").read_text()
    int8 = json.loads((out / "int8" / "report.json").read_text())["artifacts"]
    assert all(row["status"] == "ok" and row["verification_agreement"] >= 0.97 for row in int8), int8
    # fast's GAP head, distilled for one epoch from a random teacher, answers near ties: its figures are not asserted
    steps = [step["type"] for step in json.loads((out / "fast" / "report.json").read_text())["recipe"]["steps"]]
    assert steps == ["filter-prune", "head", "quantize"]  # every step ran on the translated model


def test_a_tensorflow_export_in_nhwc_reads_back_as_the_model_it_came_from(tmp_path):
    """An ONNX file that takes NHWC images (transposed for the convolutions, back before the flatten: what tf2onnx
    and vggedge's own writer produce) is read with the (H, W, C) flatten it has, and answers as its Keras source."""
    from vggedge.export.onnx import keras_to_onnx
    from vggedge.models.loading import load_model_file
    from vggedge.models.vgg import VGGSpec, build_vgg16

    source = build_vgg16(VGGSpec(input_size=64, classes=4, width=1 / 16, dense_units=12, preprocess="none"))
    keras_to_onnx(source, tmp_path / "from_tf.onnx")
    read = load_model_file(tmp_path / "from_tf.onnx", "none")
    assert "NHWC input" in read.translation["layout"] and read.translation["max_score_difference"] <= 1e-4
    images = np.random.default_rng(4).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(read.model.predict(images, verbose=0), source.predict(images, verbose=0), atol=1e-5)


def torch_vgg(state: dict[str, np.ndarray], logit_scale: float = 1.0):  # noqa: ANN201 - a torch module
    """A torch module in torchvision's VGG structure (``features``, ``avgpool``, ``classifier``; ``make_layers``'
    numbering) holding ``state``; ``logit_scale`` changes what it computes without changing its weights."""
    import torch
    from torch import nn

    layers, channels = [], 3
    for width, count in zip(WIDTHS, LAYOUTS["vgg16"], strict=True):
        for _ in range(count):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(2, 2))

    class TorchvisionLayoutVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((SIDE, SIDE))
            sizes = [channels * SIDE * SIDE, 24, 24, 5]
            self.classifier = nn.Sequential(
                nn.Linear(sizes[0], sizes[1]), nn.ReLU(True), nn.Dropout(),
                nn.Linear(sizes[1], sizes[2]), nn.ReLU(True), nn.Dropout(), nn.Linear(sizes[2], sizes[3]),
            )  # fmt: skip

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1)) * logit_scale

    module = TorchvisionLayoutVGG()
    module.load_state_dict({name: torch.from_numpy(value) for name, value in state.items()})
    return module.eval()


@pytest.mark.torch
@pytest.mark.parametrize("logit_scale", [1.0, 3.0])
def test_a_torchscript_file_is_checked_against_the_module_torch_runs(logit_scale, tmp_path, monkeypatch):
    """With torch installed (CI runs the tests marked ``torch`` again with a CPU build of it;
    benchmarks/torch_sources.py runs torchvision's own modules), a TorchScript file is checked against its own
    module, run by torch, not against a graph rebuilt from its weights: a module whose forward computes something
    other than its weights' VGG (logits scaled) is stopped, which a check of the weights alone would pass. The file
    is loaded once (a full-size one is 0.53 GB a read)."""
    torch = pytest.importorskip("torch")
    from vggedge.core.errors import ModelError
    from vggedge.models.loading import load_model_file

    state = torchvision_state()
    path = tmp_path / "vgg16.pt"
    with torch.no_grad():
        torch.jit.trace(torch_vgg(state, logit_scale), torch.zeros(1, 3, 64, 64)).save(str(path))
    loads = []
    original_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kwargs: loads.append(args) or original_load(*args, **kwargs))
    if logit_scale != 1.0:
        with pytest.raises(ModelError, match="does not answer as its source.*TorchScript module run by torch"):
            load_model_file(path, None)
        return
    translation = load_model_file(path, None).describe().translation
    assert len(loads) == 1, loads
    assert translation["verified_against"].startswith("the TorchScript module run by torch 2.")
    assert translation["max_score_difference"] <= 1e-4 and translation["top1_agreement"] == 1.0, translation


@pytest.mark.torch
def test_a_pth_state_dict_saved_by_torch_reads_as_its_safetensors_twin(tmp_path):
    """``torch.save(model.state_dict())``, read with ``weights_only=True``, gives the model its safetensors file gives;
    a whole pickled module is refused in one line, never unpickled."""
    torch = pytest.importorskip("torch")
    from vggedge.core.errors import ModelError
    from vggedge.models.loading import load_model_file

    state = torchvision_state(batch_norm=True)
    torch.save({name: torch.from_numpy(value) for name, value in state.items()}, tmp_path / "vgg16_bn.pth")
    save_safetensors(state, tmp_path / "vgg16_bn.safetensors")
    images = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    from_pth = load_model_file(tmp_path / "vgg16_bn.pth", None)
    from_safetensors = load_model_file(tmp_path / "vgg16_bn.safetensors", None)
    np.testing.assert_array_equal(
        from_pth.model.predict(images, verbose=0), from_safetensors.model.predict(images, verbose=0)
    )
    reference = from_pth.describe().translation["verified_against"]
    assert reference.startswith("its weights as PyTorch's NCHW layers, run by torch 2."), reference
    # torch's layers and ONNX Runtime's graph of the same weights (the check without torch) answer alike
    from vggedge.models.foreign import source_outputs
    from vggedge.models.onnx_vgg import nchw_graph, run_onnx
    from vggedge.models.torch_layout import read_state_dict, vgg_from_state_dict

    weights = vgg_from_state_dict(read_state_dict(tmp_path / "vgg16_bn.pth").state)
    pixels = images / 255.0
    by_torch, _ = source_outputs(weights, tmp_path / "vgg16_bn.pth", pixels)
    np.testing.assert_allclose(by_torch, run_onnx(nchw_graph(weights), pixels), atol=1e-5)
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), tmp_path / "whole.pth")  # a module, not a state dict
    with pytest.raises(ModelError, match="weights_only=True and never unpickles code"):
        load_model_file(tmp_path / "whole.pth", None)


def test_class_names_a_checkpoint_carries_name_the_models_outputs(cli, tmp_path):
    """A safetensors file's metadata, an ONNX file's (vggedge's own ONNX writes ``labels``) and a training checkpoint's
    ``class_to_idx`` (torch only) name the classes in output order; names that do not match the output are one line."""
    from safetensors.numpy import save_file

    from vggedge.export.onnx import keras_to_onnx
    from vggedge.models.loading import load_model_file
    from vggedge.models.vgg import VGGSpec, build_vgg16

    state = torchvision_state(classes=3)
    names = ["ants", "bees", "wasps"]
    arrays = {name: np.ascontiguousarray(value) for name, value in state.items()}
    save_file(arrays, str(tmp_path / "named.safetensors"), metadata={"class_names": json.dumps(names)})
    read = load_model_file(tmp_path / "named.safetensors", None)
    assert read.class_names == names
    source = build_vgg16(VGGSpec(input_size=64, classes=3, width=1 / 16, dense_units=12, preprocess="none"))
    keras_to_onnx(source, tmp_path / "named.onnx", {"labels": "\n".join(names)})
    assert load_model_file(tmp_path / "named.onnx", "none").class_names == names
    from vggedge.models.vgg_weights import class_names_in

    # A map that is no index map (a user's own dict under a common key) names nothing, never a traceback
    assert class_names_in({"idx_to_class": {"first": "ants"}, "class_to_idx": {"ants": [0]}}) is None
    save_file(arrays, str(tmp_path / "wrong.safetensors"), metadata={"labels": "ants\nbees"})
    result = cli("inspect", tmp_path / "wrong.safetensors")
    assert result.code == 2 and "names 2 classes (ants, bees…) but its last layer outputs 3" in result.err
    assert "Traceback" not in result.err


@pytest.mark.torch
def test_a_training_checkpoints_class_to_idx_names_the_classes(tmp_path):
    """``torch.save({"state_dict": ..., "class_to_idx": ...})``, as the ImageFolder tutorials write it: the names come
    in index order."""
    torch = pytest.importorskip("torch")
    from vggedge.models.loading import load_model_file

    state, names = torchvision_state(classes=3), ["ants", "bees", "wasps"]
    checkpoint = {"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}, "epoch": 7,
                  "class_to_idx": {"wasps": 2, "ants": 0, "bees": 1}}  # fmt: skip
    torch.save(checkpoint, tmp_path / "trained.pth")
    assert load_model_file(tmp_path / "trained.pth", None).class_names == names


@pytest.mark.torch
def test_torchs_own_gap_and_batchnorm1d_modules_read_from_pth_torchscript_and_onnx_export(tmp_path):
    """torch only: the common fine-tune head built of torch's own modules (``AdaptiveAvgPool2d(1)``, ``Linear``,
    ``BatchNorm1d``, ``ReLU``, ``Dropout``) loaded with :func:`gap_bn_state`, saved as a state dict, traced as
    TorchScript and exported by ``torch.onnx.export``: every file reads, and answers as the module on the same
    images."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from vggedge.models.loading import load_model_file

    class GapHeadVGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch_vgg(torchvision_state()).features
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Linear(WIDTHS[-1], 24), nn.BatchNorm1d(24), nn.ReLU(True), nn.Dropout(), nn.Linear(24, 3)
            )

        def forward(self, x):  # noqa: ANN001, ANN202 - torchvision's VGG.forward
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    module = GapHeadVGG()
    state = gap_bn_state()
    module.load_state_dict({name: torch.from_numpy(value) for name, value in state.items()})
    module.eval()
    torch.save(module.state_dict(), tmp_path / "gap_bn.pth")
    example = torch.zeros(1, 3, 96, 96)
    with torch.no_grad():
        torch.jit.trace(module, example).save(str(tmp_path / "gap_bn.pt"))
        torch.onnx.export(module, (example,), str(tmp_path / "gap_bn.onnx"), dynamo=False)
    images = np.random.default_rng(7).uniform(0, 255, (3, 96, 96, 3)).astype(np.float32)
    with torch.no_grad():
        logits = module(torch.from_numpy((images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).permute(0, 3, 1, 2).float())
    expected = torch.softmax(logits, dim=1).numpy()
    for name in ("gap_bn.pth", "gap_bn.pt", "gap_bn.onnx"):
        read = load_model_file(tmp_path / name, "torch")
        assert read.anatomy.head_kind == "gap" and read.translation["max_score_difference"] <= 1e-5, name
        size = read.model.input_shape[1]
        assert size == (96 if name.endswith(".onnx") else 224), (name, size)
        if size == 96:
            np.testing.assert_allclose(read.model.predict(images, verbose=0), expected, atol=1e-5)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
