"""`vggedge bench` on aarch64, the Raspberry Pi's architecture: same predictions as on x86, no fake latency.

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

pytestmark = pytest.mark.slow

ARM64_PYTHON = os.environ.get("VGGEDGE_ARM64_PYTHON")


def test_bench_on_aarch64_predicts_exactly_what_x86_predicts(all_runs, digits, cli, tmp_path):
    if not ARM64_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("CI must provide VGGEDGE_ARM64_PYTHON (an emulated aarch64 Python; see .ci/arm64)")
        pytest.skip("set VGGEDGE_ARM64_PYTHON to the wrapper `.ci/arm64` prints")
    from vggedge.data import save_split

    images = tmp_path / "eval"
    save_split(digits.eval, digits.class_names, images)  # the 360 images the int8 run was evaluated on
    model = all_runs / "int8" / "model.tflite"
    done = subprocess.run(
        [
            ARM64_PYTHON,
            "-m",
            "vggedge",
            "bench",
            str(model),
            "--data",
            str(images),
            "--out",
            str(tmp_path / "arm64"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert cli("bench", model, "--data", images, "--out", tmp_path / "x86", "-q", "--runs", "3").code == 0

    arm, x86 = (json.loads((tmp_path / side / "report.json").read_text()) for side in ("arm64", "x86"))
    assert arm["environment"]["machine"] == "aarch64" and arm["environment"]["tensorflow"] is None
    assert arm["environment"]["runtime"] == "ai-edge-litert"
    assert arm["environment"]["emulated"] and x86["environment"]["emulated"] is None
    # No emulated latency passed off as a device figure.
    assert arm["result"]["latency_ms"] is None and arm["ratios"]["speedup"] is None
    assert any(note.startswith("latency not measured: emulated") for note in arm["notes"])
    assert x86["result"]["latency_ms"]["p50"] > 0

    arm_top1, x86_top1 = (json.loads((tmp_path / side / "predictions.json").read_text()) for side in ("arm64", "x86"))
    assert len(arm_top1["keys"]) == 360 and arm_top1["keys"] == x86_top1["keys"]
    # Integer kernels: the same int8 model gives the same class on every image on both architectures.
    assert arm_top1["top1"] == x86_top1["top1"]
    assert arm["result"]["top1"] == x86["result"]["top1"] and arm["result"]["agreement"] == x86["result"]["agreement"]
