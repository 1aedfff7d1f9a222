"""The light interpreter wrapper: quantized inputs, file checks, runtime choice."""

from __future__ import annotations

import numpy as np
import pytest

from vggedge.core.errors import UserError
from vggedge.core.metrics import agreement, as_class_scores, latency_summary, top_k_accuracy
from vggedge.core.report import Latency
from vggedge.device.runtime import check_tflite_file, find_runtime


def test_runtime_prefers_ai_edge_litert():
    runtime = find_runtime()
    assert runtime.name == "ai-edge-litert" and runtime.version[0].isdigit()
    with pytest.raises(UserError, match="unknown runtime 'onnx'"):
        find_runtime("onnx")


@pytest.mark.parametrize("content", [b"", b"hello world, not tflite", b"\x00" * 100])
def test_non_tflite_files_are_refused(tmp_path, content):
    path = tmp_path / "m.tflite"
    path.write_bytes(content)
    with pytest.raises(UserError, match="is not a TFLite model"):
        check_tflite_file(path)


def test_metrics_figures():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    assert top_k_accuracy(scores, np.array([1, 1, 0]), 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, np.array([1, 1, 0]), 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, np.array([1, 1, 0]), 5) is None  # fewer than 5 classes: not measured
    assert agreement(scores, scores[:, ::-1]) == pytest.approx(1 / 3)
    sigmoid = as_class_scores(np.array([[0.9], [0.2]]))
    np.testing.assert_allclose(sigmoid, [[0.1, 0.9], [0.8, 0.2]], atol=1e-6)
    assert latency_summary([1.0, 2.0, 3.0, 4.0, 100.0]) == Latency(p50=3.0, p90=61.6, runs=5)


def test_bench_agreement_reads_a_sigmoid_output_as_two_classes():
    from vggedge.device.bench import agreement_with_baseline

    scores = np.array([[0.9], [0.2], [0.7]])  # 1-unit sigmoid: classes 1, 0, 1
    baseline = {"keys": ["a", "b", "c"], "top1": [1, 0, 0]}
    assert agreement_with_baseline(["a", "b", "c"], scores, baseline) == pytest.approx(2 / 3)
