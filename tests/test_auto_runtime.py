"""`--recipe auto --runtime`: the search writes, scores and times every candidate in the format the board's runtime
runs (ONNX for onnxruntime, the IR for OpenVINO), side by side with the current model in that runtime, and the run
writes that format beside the TFLite model."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import tiny_searcher


def test_the_timed_format_is_added_to_the_run_and_runtimes_are_named():
    from vggedge.core.errors import DeviceError
    from vggedge.core.formats import ONNX, OPENVINO, TFLITE, runtime_named
    from vggedge.export.formats import with_format_of

    assert runtime_named("litert") == ("ai-edge-litert", TFLITE)
    assert runtime_named("ONNXRuntime") == ("onnxruntime", ONNX)
    assert runtime_named("openvino") == ("openvino", OPENVINO)
    with pytest.raises(DeviceError, match="unknown runtime 'ncnn': choose from litert \\(ai-edge-litert, "):
        runtime_named("ncnn")
    assert with_format_of("onnxruntime", ["tflite"]) == ["tflite", "onnx"]
    assert with_format_of("openvino", ["tflite", "onnx"]) == ["tflite", "onnx", "openvino"]
    assert with_format_of("litert", ["tflite"]) == ["tflite"]


def test_an_auto_only_option_is_refused_with_a_fixed_recipe(cli, tiny_h5, tmp_path):
    result = cli("optimize", "--recipe", "int8", "--runtime", "onnxruntime", "--model", tiny_h5, "--out", tmp_path)
    assert result.code == 2 and "--runtime: an option of the automatic search" in result.err, result.err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "files"),
    [
        ("onnxruntime", ["model.onnx"]),
        pytest.param(
            "openvino",
            ["model.xml", "model.bin"],
            marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed"),
        ),
    ],
)
def test_candidates_are_written_scored_and_timed_in_the_runtimes_format(tiny_h5, digits_dir, tmp_path, runtime, files):
    """Two shapes measured as the search measures them: the full-width start, then its copy with every block at half
    width timed beside it. Both are int8 files of the runtime's format (QDQ ONNX; an IR read from it), timed in that
    runtime on this machine, the second against the first's files."""
    from vggedge.auto.rules import SearchOptions
    from vggedge.core.formats import format_of
    from vggedge.device.models import load
    from vggedge.steps.filters import block_layer_ratios, thin_model

    auto = SearchOptions(search_images=100, minutes=0.2, max_epochs=1, runtime=runtime, runs=3)
    built = tiny_searcher(tiny_h5, digits_dir, tmp_path, 3, auto)
    searcher, prepared = built.searcher, built.prepared
    start = searcher.measure(prepared.baseline.model, 0, None, [0] * 5, "kept")
    started = searcher.last_timed
    assert list(started.files) == files
    written = started.write(tmp_path / "start")
    assert format_of(written).name == {"onnxruntime": "onnx", "openvino": "openvino"}[runtime]
    assert load(written, threads=1).runtime.name == runtime
    assert f"this machine ({runtime} " in start.timed_on and start.latency_ms > 0 and start.reference_ms is None
    assert start.size_bytes == sum(len(content) for content in started.files.values())
    assert start.quantization == "int8" and start.drop_pts <= 5.0  # int8 of the model itself: a few images at most
    anatomy = searcher.anatomy
    half, _ = thin_model(prepared.baseline.model, block_layer_ratios(anatomy, [0.5] * 5))
    cut = searcher.measure(half, 1, None, [4] * 5, "kept", against=started)
    assert f"this machine ({runtime} " in cut.timed_on and cut.reference_ms > 0 and cut.speedup > 0
    assert cut.size_bytes < start.size_bytes  # half the filters: a smaller file in any format
