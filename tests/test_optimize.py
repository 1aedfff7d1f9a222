"""`vggedge optimize` end to end on the tiny VGG16: real conversion, real interpreter, real figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import files_under, record_figure
from vggedge.device.environment import SPEED_FEATURES
from vggedge.device.runtime import TFLiteModel

pytestmark = pytest.mark.slow
SPEED_ORDER = [*SPEED_FEATURES["x86"], *SPEED_FEATURES["arm"]]


def run_optimize(cli, model, data, out, recipe="int8", *extra):  # noqa: ANN001, ANN201
    result = cli(
        "optimize", "--recipe", recipe, "--model", model, "--data", data, "--out", out, "--quiet", "--runs", "5", *extra
    )
    assert result.code == 0, result.err
    return json.loads((out / recipe / "report.json").read_text())


def test_int8_report_states_measured_figures(cli, tiny, tiny_h5, digits_dir, tmp_path):
    report = run_optimize(cli, tiny_h5, digits_dir, tmp_path)
    assert report["schema"] == "vggedge.report/1"
    baseline, result, ratios = report["baseline"], report["result"], report["ratios"]
    assert baseline["format"] == "keras float32" and baseline["device"] == "CPU"
    record_figure("optimize int8: baseline top-1", baseline["top1"])
    record_figure("optimize int8: top-1 delta", result["top1"] - baseline["top1"])
    record_figure("optimize int8: agreement", result["agreement"])
    assert baseline["top1"] >= 0.85
    assert baseline["top5"] >= baseline["top1"]
    assert baseline["size_bytes"] == report["model"]["params"] * 4
    assert result["status"] == "ok"
    assert result["format"] == "tflite (uint8 input)"
    assert abs(result["top1"] - baseline["top1"]) <= 0.015
    assert result["agreement"] >= 0.97 and result["verification"]["agreement"] >= 0.97
    assert 0 <= result["max_abs_error"] < 0.5
    assert result["size_bytes"] <= 0.35 * baseline["size_bytes"]
    assert 0 < result["gzip_bytes"] < result["size_bytes"]
    assert result["latency_ms"]["p50"] > 0 and result["latency_ms"]["p90"] >= result["latency_ms"]["p50"]
    assert result["latency_ms"]["runs"] == 5
    assert ratios["size"] == pytest.approx(baseline["size_bytes"] / result["size_bytes"], rel=1e-3)
    assert ratios["top1_delta_pts"] == pytest.approx((result["top1"] - baseline["top1"]) * 100, abs=0.01)
    assert report["dataset"] == {
        "name": digits_dir.name,
        "classes": 10,
        "train_samples": 1197,
        "eval_samples": 500,
        "calibration_samples": 100,
        "skipped": 0,
        "eval_source": "split",
        "resize": "stretch",
    }
    env = report["environment"]
    assert env["runtime"] == "ai-edge-litert" and env["tensorflow"].startswith("2.") and env["threads"] >= 1
    assert env["emulated"] is None and env["machine"] in ("x86_64", "aarch64", "arm64")
    assert env["cpu_features"] == sorted(env["cpu_features"], key=lambda f: list(SPEED_ORDER).index(f))
    assert report["recipe"]["name"] == "int8" and report["recipe"]["steps"][0]["mode"] == "int8"
    names = {p.name for p in files_under(tmp_path / "int8")}
    expected = {"model.tflite", "recipe.toml", "report.json", "report.md", "baseline_predictions.json", "labels.txt"}
    expected.add("manifest.json")  # the completion mark, written last
    assert names == expected
    assert (tmp_path / "int8" / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    assert "**" in (tmp_path / "int8" / "report.md").read_text()

    # The TFLite file takes raw uint8 pixels: a device needs no preprocessing code.
    interpreter = TFLiteModel(tmp_path / "int8" / "model.tflite")
    assert interpreter.input_dtype == "uint8"
    image = np.asarray(json.loads((tmp_path / "int8" / "baseline_predictions.json").read_text())["top1"])
    assert len(image) == 500


def test_random_weights_report_sizes_and_null_accuracy(cli, tmp_path, monkeypatch):
    # The sizes-only path on a small VGG16 (the full-size run is in benchmarks/): accuracy is null, not 0.
    from vggedge.models import loading
    from vggedge.models.vgg import VGGSpec, append_copies, build_vgg16

    keras = loading.keras
    small = build_vgg16(VGGSpec(input_size=224, classes=1000, width=1 / 16, dense_units=32, preprocess="none"))

    def fake_vgg16(weights=None, input_tensor=None):  # noqa: ANN001, ANN202 - keras.applications.VGG16's contract
        """A 1/16-width VGG16 built on ``input_tensor``, as Keras builds its own on the tensor it is given."""
        outputs = append_copies(input_tensor, [(layer, True) for layer in small.layers[1:]])
        return keras.Model(keras.utils.get_source_inputs(input_tensor), outputs, name="vgg16")

    monkeypatch.setattr(loading.keras.applications, "VGG16", fake_vgg16)
    result = cli(
        "optimize",
        "--recipe",
        "int8",
        "--model",
        "vgg16",
        "--weights",
        "random",
        "--out",
        tmp_path,
        "-q",
        "--runs",
        "3",
    )
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "int8" / "report.json").read_text())
    assert report["baseline"]["top1"] is None and report["result"]["top1"] is None
    assert report["result"]["agreement"] is None and report["ratios"]["top1_delta_pts"] is None
    assert report["result"]["status"] == "ok" and report["result"]["verification"]["gated"] is False
    assert report["model"]["weights"] == "random"
    assert any("random weights" in note for note in report["notes"])
    assert report["result"]["size_bytes"] < report["baseline"]["size_bytes"] / 3
    # Built on the raw-pixel input with the caffe preprocessing first, and one copy of the weights.
    assert report["model"]["anatomy"]["preprocessing"] == ["preprocess"] and report["model"]["preprocess"] == "caffe"
    assert 0 <= report["model"]["params"] - small.count_params() < 100  # + the preprocessing constants only


def test_a_failing_step_becomes_a_failed_report_not_a_crash(cli, tiny_h5, digits_dir, tmp_path, monkeypatch):
    from vggedge.run import recipe_run

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(recipe_run, "convert", broken)
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "model.tflite").write_bytes(b"stale model from an earlier run")
    result = cli(
        "optimize", "--recipe", "int8", "--model", tiny_h5, "--data", digits_dir, "--out", tmp_path, "-q", "--runs", "2"
    )
    assert result.code == 1, result.err  # a result that is not ok: the report is written, the exit code says so
    report = json.loads((tmp_path / "int8" / "report.json").read_text())
    assert report["result"]["status"] == "failed_export"
    assert report["result"]["error"] == "RuntimeError: converter exploded"
    assert report["result"]["size_bytes"] is None and report["result"]["top1"] is None
    assert report["baseline"]["top1"] is not None
    assert not (tmp_path / "int8" / "model.tflite").exists()


def test_fine_tuning_is_seeded(cli, tiny_h5, small_digits_dir, tmp_path):
    # The same seed gives the same fine-tuned model; another seed a different one (shuffling order). On 30
    # digits per class: the mechanism needs a few optimizer steps, not the full training split.
    recipe = tmp_path / "tune.toml"
    recipe.write_text(
        'schema = "vggedge.recipe/2"\nname = "tune"\n\n[[steps]]\ntype = "prune"\nsparsity = 0.5\n'
        'epochs = 1\nlearning_rate = 1e-4\n\n[[steps]]\ntype = "quantize"\nmode = "float16"\n'
    )

    def outputs(seed: int, out):  # noqa: ANN001, ANN202
        result = cli(
            "optimize",
            "--recipe",
            str(recipe),
            "--model",
            tiny_h5,
            "--data",
            small_digits_dir,
            "--out",
            out,
            "--quiet",
            "--runs",
            "1",
            "--eval-samples",
            "50",
            "--seed",
            str(seed),
            "--max-drop",
            "100",  # seeding is the point here; on 50 images one flipped image is 2 points, over the default
        )
        assert result.code == 0, result.err
        assert json.loads((out / "tune" / "report.json").read_text())["recipe"]["seed"] == seed
        interpreter = TFLiteModel(out / "tune" / "model.tflite")
        return interpreter.predict(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8))

    first, again, other = outputs(0, tmp_path / "a"), outputs(0, tmp_path / "b"), outputs(1, tmp_path / "c")
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert np.max(np.abs(first - other)) > 1e-4


def test_a_result_over_its_budget_is_reported_and_exits_1(cli, tiny_h5, small_digits_dir, tmp_path):
    """Removing 90% of the filters with no fine-tune costs the tiny model ~80 points (it falls to chance):
    verified, but over the default 1-point budget. Every report is still written; the exit code says 1."""
    recipe = tmp_path / "gutted.toml"
    recipe.write_text(
        'schema = "vggedge.recipe/2"\nname = "gutted"\n\n[[steps]]\ntype = "filter-prune"\nratio = 0.9\n'
        'epochs = 0\n\n[[steps]]\ntype = "quantize"\nmode = "dynamic"\n'
    )
    result = cli(
        "optimize",
        "--recipe",
        f"{recipe},int8",
        "--model",
        tiny_h5,
        "--data",
        small_digits_dir,
        "--out",
        tmp_path / "out",
        "-q",
        "--runs",
        "1",
        "--eval-samples",
        "100",
    )
    assert result.code == 1 and "over budget" in result.out, result.out
    gutted = json.loads((tmp_path / "out" / "gutted" / "report.json").read_text())
    assert gutted["result"]["status"] == "over_budget" and gutted["ratios"]["top1_delta_pts"] < -50
    assert gutted["result"]["accuracy_budget"] == {"max_drop_pts": 1.0, "source": "default"}
    assert any(note.startswith("over budget: top-1 fell") for note in gutted["notes"])
    assert (tmp_path / "out" / "gutted" / "model.tflite").exists()
    assert json.loads((tmp_path / "out" / "int8" / "report.json").read_text())["result"]["status"] == "ok"
