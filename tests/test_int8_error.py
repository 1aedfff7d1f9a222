"""int8 that names the layer when it breaks (per-layer error) and keeps the model's accuracy (equalization).

The imbalance form (``forms.unbalance``): one output channel of block3_conv1 ×1000, the next conv's input
weights for it ÷1000. Same float function; plain int8 of the tiny model falls to about chance (24% measured),
because the one huge channel stretches the shared activation scale and every other channel rounds to zero.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from forms import FORMS, unbalance
from helpers import record_figure
from vggedge.backend.keras_env import keras
from vggedge.device.runtime import TFLiteModel
from vggedge.export.convert import convert
from vggedge.export.equalize import equalize, find_pairs
from vggedge.export.layer_error import HEALTHY_RMSE_IN_SCALES, layer_errors
from vggedge.steps.context import clone_with

CULPRIT = "block3_conv1"


def weighted_layers(model) -> list[str]:  # noqa: ANN001
    return [layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


@pytest.fixture(scope="module")
def unbalanced(tiny):  # noqa: ANN001, ANN201
    return unbalance(clone_with(tiny[0], lambda layer: layer, set()), CULPRIT)


def int8_top1(flatbuffer: bytes, images: np.ndarray, labels: np.ndarray, tmp_path) -> float:  # noqa: ANN001
    path = tmp_path / "model.tflite"
    path.write_bytes(flatbuffer)
    return float((TFLiteModel(path).predict(images).argmax(axis=1) == labels).mean())


def test_the_imbalance_keeps_the_float_function(tiny, unbalanced, digits) -> None:
    images = digits.eval.images[:32]
    original, changed = tiny[0].predict(images, verbose=0), unbalanced.predict(images, verbose=0)
    assert np.abs(original - changed).max() < 1e-4


def test_the_error_table_names_the_unbalanced_layer_first(tiny, unbalanced, digits, tmp_path) -> None:
    calibration = digits.calibration.images[:100]
    rows = layer_errors(unbalanced, convert(unbalanced, "int8", calibration), digits.eval.images)
    assert [row.layer for row in rows][:1] == [CULPRIT]
    worst = rows[0]
    assert worst.part == "block3" and worst.weak and worst.median_channel_share < 0.01
    # Every layer after it works on a broken input: marked so, not blamed.
    assert [row.layer for row in rows if row.weak] == [CULPRIT]
    assert {row.layer for row in rows if row.after_broken} >= {"block3_conv2", "fc1", "predictions"}
    assert sorted(row.layer for row in rows) == sorted(weighted_layers(unbalanced))
    assert {row.matched_by for row in rows} == {"name"}
    # The same model balanced: no layer is weak, and the own errors are rounding-sized.
    healthy = layer_errors(tiny[0], convert(tiny[0], "int8", calibration), digits.eval.images)
    assert not any(row.weak for row in healthy), [row.to_dict() for row in healthy[:3]]
    assert all(row.rmse_in_scales < 4 * HEALTHY_RMSE_IN_SCALES for row in healthy)
    assert min(row.median_channel_share for row in healthy) > 0.05


def test_equalization_keeps_the_function_and_brings_int8_back(tiny, unbalanced, digits, tmp_path) -> None:
    images, labels = digits.eval.images[:300], digits.eval.labels[:300]
    calibration = digits.calibration.images[:100]
    float_top1 = float((unbalanced.predict(images, verbose=0).argmax(axis=1) == labels).mean())
    collapsed = int8_top1(convert(unbalanced, "int8", calibration), images, labels, tmp_path)
    before = unbalanced.get_layer(CULPRIT).get_weights()[0].copy()
    balanced, record = equalize(unbalanced)
    assert np.array_equal(unbalanced.get_layer(CULPRIT).get_weights()[0], before)  # the source is untouched
    assert np.abs(balanced.predict(images[:32], verbose=0) - unbalanced.predict(images[:32], verbose=0)).max() < 1e-4
    assert record["pairs"] == len(weighted_layers(unbalanced)) - 1
    assert record["largest_channel_ratio_before"] > 500 and record["largest_channel_ratio_after"] < 3
    restored = int8_top1(convert(balanced, "int8", calibration), images, labels, tmp_path)
    assert collapsed < float_top1 - 0.3, "the imbalance form no longer collapses int8: the test proves nothing"
    assert restored >= float_top1 - 0.01
    assert weighted_layers(balanced) == weighted_layers(unbalanced)


def test_equalization_passes_through_flatten_and_pooling_only(tiny) -> None:
    pairs = find_pairs(tiny[0])
    assert ("block5_conv3", "fc1", True) in [(p.first, p.second, p.flattened) for p in pairs]
    assert ("block1_conv2", "block2_conv1", False) in [(p.first, p.second, p.flattened) for p in pairs]
    assert all(p.second != "block1_conv1" for p in pairs)  # the Rescaling before it does not commute with a scale


@pytest.mark.slow
def test_qat_starts_from_the_activation_ranges_the_model_has(tiny, digits) -> None:
    """tfmot starts every activation quantizer at [-6, 6]; a model whose activations reach far past that (here the
    tiny VGG16 with block1_conv1's outputs x100 and block1_conv2's inputs /100: the same function) is clipped
    until a long fine-tune moves the range. Set from the float layers' outputs first, the QAT model answers as
    the float model before it trains at all. Its int8 error table then has one row per user layer, matched by
    name through tfmot's wrappers (quant_<layer>), each against the float layers with the model's own weights."""
    from vggedge.backend.keras_env import tfmot
    from vggedge.export.layer_error import float_view
    from vggedge.steps.qat import TFMOT_INITIAL_RANGE, initialize_activation_ranges

    quantize = tfmot().quantization.keras
    model = clone_with(tiny[0], lambda layer: layer, set())
    for channel in range(model.get_layer("block1_conv1").filters):
        unbalance(model, "block1_conv1", channel, 100.0)
    images, held_apart = digits.eval.images[:100].astype("float32"), digits.calibration.images[:64]
    reference = model.predict(images, verbose=0).argmax(axis=1)

    def after_one_step(initialized: bool):  # noqa: ANN202
        """The QAT model after one training-mode batch at a zero learning rate (what sets tfmot's weight ranges),
        and its top-1 agreement with the float model."""
        qat = quantize.quantize_apply(clone_with(model, quantize.quantize_annotate_layer, set(weighted_layers(model))))
        record = initialize_activation_ranges(qat, model, held_apart) if initialized else None
        qat.compile(keras.optimizers.Adam(0.0), "sparse_categorical_crossentropy")
        qat.fit(images[:32], reference[:32], epochs=1, batch_size=32, verbose=0)
        return qat, record, float((qat.predict(images, verbose=0).argmax(axis=1) == reference).mean())

    _, _, clipped = after_one_step(False)
    qat, record, calibrated = after_one_step(True)
    assert record["images"] == 64 and record["quantizers_set"] == len(weighted_layers(model))
    assert record["widest"] > 10 * TFMOT_INITIAL_RANGE
    post_max = next(v for v in qat.get_layer("quant_block1_conv1").weights if "post_activation_max" in v.name)
    assert float(post_max.numpy()) > 10 * TFMOT_INITIAL_RANGE
    record_figure("qat x100 activations: agreement with tfmot's initial ranges", clipped)
    record_figure("qat x100 activations: agreement with the calibrated ranges", calibrated)
    assert calibrated >= 0.95 and clipped < calibrated - 0.2, (clipped, calibrated)
    # The error table of the QAT model: its float view carries the user's names and the wrappers' weights.
    view, aliases = float_view(qat)
    assert weighted_layers(view) == weighted_layers(model) and aliases["quant_fc1"] == "fc1"
    trained = next(v for v in qat.get_layer("quant_fc1").weights if v.name.endswith("fc1/kernel:0"))
    assert np.array_equal(view.get_layer("fc1").get_weights()[0], trained.numpy())
    rows = layer_errors(qat, convert(qat, "int8-qat", held_apart[:50]), digits.eval.images, count=2)
    assert sorted(row.layer for row in rows) == sorted(weighted_layers(model))
    assert {row.matched_by for row in rows} == {"name"} and not any(row.weak for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_maps_to_its_own_layers_and_equalizes_exactly(form, tmp_path) -> None:
    """Untrained forms (the mapping and the algebra, not accuracy): each conv/dense op matched to its Keras
    layer by name, and equalization (after folding the normalization of the BN form) the same function."""
    from vggedge.models.loading import load_model_file

    builder, _, preprocess = FORMS[form]
    path = tmp_path / f"{form}.keras"
    builder().save(path)
    model = load_model_file(path, preprocess).model
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    rows = layer_errors(model, convert(model, "int8", images), images, count=2)
    assert sorted(row.layer for row in rows) == sorted(weighted_layers(model))
    assert {row.matched_by for row in rows} == {"name"}
    balanced, record = equalize(model)
    assert record["pairs"] >= 12
    scale = float(np.abs(model.predict(images, verbose=0)).max())
    assert np.abs(balanced.predict(images, verbose=0) - model.predict(images, verbose=0)).max() <= 1e-4 * max(scale, 1)


@pytest.mark.slow
def test_optimize_names_the_culprit_without_equalization_and_is_ok_with_it(cli, unbalanced, digits_dir, tmp_path):
    """The user's view: `optimize --recipe int8` on the unbalanced model is ok (equalization is the default);
    with `equalize = false` it fails, and the report, its notes and the terminal name block3_conv1 first;
    with `equalize = false` and `keep_float = "auto"` it is ok with at most two layers in float."""
    model = tmp_path / "unbalanced.h5"
    unbalanced.save(model)
    plain = tmp_path / "int8-plain.toml"
    plain.write_text(
        'schema = "vggedge.recipe/2"\nname = "int8-plain"\n\n[[steps]]\ntype = "quantize"\nmode = "int8"\n'
        "equalize = false\n"
    )
    fallback = tmp_path / "int8-fallback.toml"
    fallback.write_text(
        'schema = "vggedge.recipe/2"\nname = "int8-fallback"\n\n[[steps]]\ntype = "quantize"\nmode = "int8"\n'
        'equalize = false\nkeep_float = "auto"\n'
    )
    out = tmp_path / "out"
    result = cli(
        "optimize", "--recipe", f"int8,{plain},{fallback}", "--model", model, "--data", digits_dir, "--out", out, "-q",
        "--runs", "1", "--eval-samples", "200", "--no-remedies",  # as written (remedies: tests/test_remedies.py)
        "--formats", "tflite,onnx",
    )  # fmt: skip
    assert result.code == 1, result.err
    fixed = json.loads((out / "int8" / "report.json").read_text())
    broken = json.loads((out / "int8-plain" / "report.json").read_text())
    assert fixed["result"]["status"] == "ok", fixed["notes"]
    assert fixed["recipe"]["steps"][-1]["equalization"]["largest_channel_ratio_before"] > 500
    assert broken["result"]["status"] in ("failed_verification", "over_budget")
    assert broken["result"]["layer_error"][0]["layer"] == CULPRIT
    assert any(note.startswith("int8 error per layer, worst first: block3 · block3_conv1") for note in broken["notes"])
    markdown = (out / "int8-plain" / "report.md").read_text()
    assert "## int8 error per layer" in markdown and "| block3 · block3_conv1 ⚠ |" in markdown
    assert "int8-plain: worst int8 layer block3 · block3_conv1" in " ".join(result.out.split())
    assert '--keep-float auto (keep_float = "auto" in the quantize step) keeps the worst layers' in " ".join(
        result.out.split()
    )
    assert any("To try: --keep-float auto" in note for note in broken["notes"])
    # Equalization off, float fallback on: the fewest layers in float that pass the check on held-apart images.
    kept = json.loads((out / "int8-fallback" / "report.json").read_text())
    record = kept["recipe"]["steps"][-1]["keep_float"]
    assert kept["result"]["status"] == "ok", kept["notes"]
    assert record["passed"] and 1 <= len(record["float_layers"]) <= 2 and record["float_layers"][0] == CULPRIT
    assert record["tries"][0]["float_layers"] == [] and record["tries"][0]["agreement"] < 0.5
    assert TFLiteModel(out / "int8-fallback" / "model.tflite").input_dtype == "uint8"
    assert any(note.startswith("kept in float: block3_conv1") and " latency (" in note for note in kept["notes"])
    assert record["latency_ms"]["all_int8"] > 0
    # The ONNX file keeps the same layers in float: their nodes left out of the QDQ quantization, said in its row
    tflite, onnx_row = kept["artifacts"]
    assert tflite["float_layers"] == onnx_row["float_layers"] == record["float_layers"], kept["artifacts"]
    assert onnx_row["status"] == ("ok" if onnx_row["verification_agreement"] >= 0.97 else "failed_verification")
    assert f"int8, float: {', '.join(record['float_layers'])}" in (out / "int8-fallback" / "report.md").read_text()
    graph = onnx.load(str(out / "int8-fallback" / "model.onnx")).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    weight_of = {node.name: node.input[1] for node in graph.node if node.op_type in ("Conv", "Gemm")}
    assert {name for name, weight in weight_of.items() if weight not in dequantized} == set(record["float_layers"])
    assert json.loads((out / "int8-plain" / "report.json").read_text())["artifacts"][1]["float_layers"] == []
    table = [line for line in result.out.splitlines() if not line.startswith("report: ")]  # paths may be long
    assert max(len(line) for line in table) <= 80, result.out


def test_calibration_takes_every_class_in_turn() -> None:
    from vggedge.run.calibration import class_balanced_order

    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    assert class_balanced_order(labels).tolist() == [0, 6, 8, 1, 7, 2, 3, 4, 5]
    assert sorted(set(labels[class_balanced_order(labels)[:3]])) == [0, 1, 2]  # in the split's order: [0, 0, 0]
    assert class_balanced_order(np.array([], dtype=int)).tolist() == []


def test_calibration_that_misses_a_class_is_said(digits) -> None:
    import dataclasses

    from vggedge.run.calibration import classes_without_calibration

    assert classes_without_calibration(digits, 100) is None  # the digits' calibration split has all ten
    calibration = digits.calibration
    only_low = calibration.labels < 8
    partial = dataclasses.replace(
        digits,
        calibration=dataclasses.replace(
            calibration,
            images=calibration.images[only_low],
            labels=calibration.labels[only_low],
            keys=[key for key, keep in zip(calibration.keys, only_low, strict=True) if keep],
        ),
    )
    note = classes_without_calibration(partial, 100)
    assert note is not None and "covering 8 of 10 classes (none of '8', '9')" in note


def test_named_float_layers_are_exactly_those(unbalanced, digits) -> None:
    import tempfile
    from pathlib import Path

    from vggedge.export.fallback import convert_with_fallback

    flatbuffer, record = convert_with_fallback(unbalanced, "block3", digits.calibration.images[:100], None, None)
    assert record["float_layers"] == ["block3_conv1", "block3_conv2", "block3_conv3"]
    # What they cost: the size of every layer int8 beside it, and both timed interleaved on this machine.
    assert record["tries"][0]["size_bytes"] < len(flatbuffer)
    latency = record["latency_ms"]
    assert latency["with_float_layers"] > 0 and latency["all_int8"] > 0 and latency["threads"] >= 1
    assert latency["ratio"] == pytest.approx(latency["with_float_layers"] / latency["all_int8"], rel=0.01)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tflite"
        path.write_bytes(flatbuffer)
        predicted = TFLiteModel(path).predict(digits.eval.images[:200]).argmax(axis=1)
    assert (predicted == digits.eval.labels[:200]).mean() >= 0.9  # the stretched tensor never goes through int8


@pytest.mark.parametrize("value", ["block0", "fc1,", "heads"])
def test_a_bad_keep_float_selector_is_refused_when_the_recipe_is_read(value) -> None:
    from vggedge.core.errors import UserError
    from vggedge.recipe.schema import recipe_from_dict

    step = {"type": "quantize", "mode": "int8", "keep_float": value}
    with pytest.raises(UserError, match="keep_float"):
        recipe_from_dict({"schema": "vggedge.recipe/2", "name": "x", "steps": [step]})


def test_a_note_never_suggests_the_remedy_the_run_already_tried():
    from vggedge.run.outputs import remedy

    assert "To try: --keep-float auto" in remedy(None)
    tried = remedy("auto")
    assert "--keep-float auto" not in tried.split("Already tried")[0] and "Already tried: keep_float = 'auto'" in tried
    assert "--recipe auto" in tried


def test_a_model_that_collapsed_before_conversion_is_named_as_such():
    import numpy as np

    from vggedge.run.outputs import collapse_note

    rng = np.random.default_rng(0)
    baseline = rng.dirichlet(np.ones(3), size=180)  # answers that differ from image to image
    collapsed = 1 / 3 + rng.uniform(-0.01, 0.01, size=(180, 3))  # the same near-tie for every image
    note = collapse_note(collapsed, baseline)
    assert note is not None and "collapsed toward a constant" in note and "not an int8 problem" in note
    assert collapse_note(baseline[::-1].copy(), baseline) is None  # a working model: no note
    assert collapse_note(None, baseline) is None


@pytest.mark.slow
def test_a_short_qat_remedy_runs_when_the_float_fallback_is_already_in_the_recipe(
    cli, unbalanced, digits_dir, tmp_path
):
    """int8 without equalization, a fallback that keeps the wrong block in float: the recipe misses; keep-float is
    already in it, so the next remedy, one epoch of quantization-aware fine-tuning, is tried on the same model,
    recorded with its figures (here QAT's own check catches it collapsing, 9% of held-apart images), and ships
    when it ends ok."""
    model = tmp_path / "unbalanced.h5"
    unbalanced.save(model)
    recipe = tmp_path / "int8-wrong-fallback.toml"
    recipe.write_text(
        'schema = "vggedge.recipe/2"\nname = "wrong"\n\n[[steps]]\ntype = "quantize"\nmode = "int8"\n'
        'equalize = false\nkeep_float = "block1"\n'
    )
    out = tmp_path / "out"
    cli(
        "optimize", "--recipe", recipe, "--model", model, "--data", digits_dir, "--out", out, "-q", "--runs", "1",
        "--eval-samples", "200",
    )  # fmt: skip
    report = json.loads((out / "wrong" / "report.json").read_text())
    tries = {t["remedy"]: t for t in report["remedies"]}
    assert tries["keep-float"]["status"] == "not tried" and "already in the recipe" in tries["keep-float"]["why"]
    qat = tries["short-qat"]
    assert qat["status"] != "not tried" and qat["seconds"] > 0
    assert qat["verification_agreement"] is not None or "QATCollapse" in qat["error"]  # measured, or its own check
    if qat["status"] == "ok":  # shipped: the report is the remedy's, its recipe the QAT one
        assert report["result"]["status"] == "ok" and report["recipe"]["steps"][-1]["mode"] == "int8-qat"
    else:
        assert report["result"]["status"] != "ok" and "Next: --recipe auto" in report["notes"][-1]
