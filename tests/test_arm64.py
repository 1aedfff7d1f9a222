"""`vggedge bench` and `vggedge predict` on aarch64, the Raspberry Pi's architecture: same predictions as on x86, no
fake latency.

The aarch64 Python is Debian bookworm's arm64 userland with vggedge's device-side wheels for aarch64,
run under qemu-user (`.ci/arm64` builds it and `.ci/run` names its wrapper in VGGEDGE_ARM64_PYTHON).
No TensorFlow exists there, like on a Pi. Under emulation the timings describe the emulator, so the
report must carry none.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from other_python import predict_elsewhere

pytestmark = pytest.mark.slow

ARM64_PYTHON = os.environ.get("VGGEDGE_ARM64_PYTHON")


def arm64_python() -> str:
    if not ARM64_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("CI must provide VGGEDGE_ARM64_PYTHON (an emulated aarch64 Python; see .ci/arm64)")
        pytest.skip("set VGGEDGE_ARM64_PYTHON to the wrapper `.ci/arm64` prints")
    return ARM64_PYTHON


def bench_on_both(args: list[str], tmp_path, cli) -> None:  # noqa: ANN001
    """`vggedge bench ARGS` on the emulated aarch64 (into tmp_path/arm64) and here (tmp_path/x86)."""
    done = subprocess.run(
        [ARM64_PYTHON, "-m", "vggedge", "bench", *args, "--out", str(tmp_path / "arm64")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert cli("bench", *args, "--out", tmp_path / "x86", "--runs", "3").code == 0


def test_bench_on_aarch64_two_models_two_thread_counts_predicts_what_x86_predicts(all_runs, digits, cli, tmp_path):
    arm64_python()
    from vggedge.core.data import save_split

    images = tmp_path / "eval"
    save_split(digits.eval, digits.class_names, images)  # the 360 images the int8 run was evaluated on
    # int8 and fast (int8 at a quarter of the MACs): emulated inference is slow, and both are integer models.
    models = [all_runs / "int8" / "model.tflite", all_runs / "fast" / "model.tflite"]
    # Two models at two thread counts, as on a Pi: a report each, the table, and the board read by the device check.
    args = [*map(str, models), "--data", str(images), "--threads", "1,2", "-q"]
    bench_on_both(args, tmp_path, cli)

    folders = ["fast-1t", "fast-2t", "int8-1t", "int8-2t"]
    for side in ("arm64", "x86"):
        assert sorted(p.name for p in (tmp_path / side).iterdir() if p.is_dir()) == folders
    arm, x86 = (json.loads((tmp_path / side / "int8-2t" / "report.json").read_text()) for side in ("arm64", "x86"))
    assert arm["environment"]["machine"] == "aarch64" and arm["environment"]["tensorflow"] is None
    assert arm["environment"]["runtime"] == "ai-edge-litert" and arm["environment"]["threads"] == 2
    assert arm["environment"]["emulated"] and x86["environment"]["emulated"] is None
    check = arm["environment"]["device_check"]
    # The Cortex-A72 that .ci/arm64 records in the emulated root's /proc/cpuinfo, read as on a Pi 4.
    assert check["cpu_part"] == "Cortex-A72 (0xd08)"
    assert (check["kernel_machine"], check["userland_bits"]) == ("aarch64", 64)
    # No emulated latency passed off as a device figure, and no recommendation made from none.
    assert arm["result"]["latency_ms"] is None and arm["ratios"]["speedup"] is None
    assert arm["result"]["burst_latency_ms"] is None
    assert any(note.startswith("latency not measured: emulated") for note in arm["notes"])
    assert x86["result"]["latency_ms"]["p50"] > 0
    table = json.loads((tmp_path / "arm64" / "bench.json").read_text())
    assert len(table["rows"]) == 4 and table["recommendation"].startswith("no recommendation: no latency")

    for name in ("int8", "fast"):
        arm_top1, x86_top1 = (
            json.loads((tmp_path / side / f"{name}-1t" / "predictions.json").read_text()) for side in ("arm64", "x86")
        )
        assert len(arm_top1["keys"]) == 360 and arm_top1["keys"] == x86_top1["keys"]
        # Integer kernels: the same int8 model gives the same class on every image on both architectures.
        assert arm_top1["top1"] == x86_top1["top1"], name
    assert arm["result"]["top1"] == x86["result"]["top1"] and arm["result"]["agreement"] == x86["result"]["agreement"]


def test_predict_on_aarch64_names_what_x86_names(all_runs, digits, tmp_path):
    """`vggedge predict` on the int8 model in the emulated Pi userland: the labels from the model's own metadata
    and the same top-1 class as the Classifier on x86, image by image."""
    model = all_runs / "int8" / "model.tflite"
    answer = predict_elsewhere(arm64_python(), model, digits.eval.images[:24], tmp_path, "--top", "1")
    assert answer["labels"] == "the model's metadata"


def test_an_onnx_model_on_aarch64_predicts_what_it_predicts_on_x86(all_runs, digits, cli, tmp_path):
    """The format seam on the Pi's architecture: the int8 recipe's model.onnx (QDQ) runs with onnxruntime's
    aarch64 wheel and names the classes it names on x86 (int8 kernels differ across architectures: at most 1%)."""
    arm64_python()
    from vggedge.core.data import save_split

    images = tmp_path / "eval"
    save_split(digits.eval, digits.class_names, images)
    args = [str(all_runs / "int8" / "model.onnx"), "--data", str(images), "--threads", "1", "-q"]
    bench_on_both(args, tmp_path, cli)
    arm = json.loads((tmp_path / "arm64" / "report.json").read_text())
    assert arm["environment"]["runtime"] == "onnxruntime" and arm["environment"]["machine"] == "aarch64"
    assert arm["recipe"]["name"] == "int8-onnx" and arm["result"]["latency_ms"] is None
    arm_top1, x86_top1 = (json.loads((tmp_path / side / "predictions.json").read_text()) for side in ("arm64", "x86"))
    assert arm_top1["keys"] == x86_top1["keys"] and len(arm_top1["keys"]) == 360
    same = sum(a == b for a, b in zip(arm_top1["top1"], x86_top1["top1"], strict=True)) / 360
    assert same >= 0.99, same
