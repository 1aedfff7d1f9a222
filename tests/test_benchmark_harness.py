"""The full-size harness's own parts, on the tiny model (the full-size run itself is benchmarks/, not CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import benchmark_modules
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():  # noqa: ANN201
    return benchmark_modules.load("fullsize")


def test_interleaved_timing_covers_every_model_and_thread_count(harness, all_runs):
    models = {"int8": all_runs / "int8" / "model.tflite", "fp16": all_runs / "fp16" / "model.tflite"}
    timings = harness.time_interleaved(models, runs=4)
    assert set(timings) == {("int8", 1), ("int8", 2), ("fp16", 1), ("fp16", 2)}
    assert all(len(values) == 4 and min(values) > 0 for values in timings.values())


def test_tables_name_the_environment(harness, tmp_path):
    rows = [
        {"recipe": "TensorFlow Keras float32 (reference)", "status": "ok", "p50_ms_2t": 200.0},
        {"recipe": "fast", "status": "ok", "p50_ms_2t": 40.0, "x_vs_keras_2t": 5.0},
    ]
    harness.write_tables(rows, tmp_path, "random", runs=3)
    written = sorted(p.name for p in tmp_path.iterdir())
    name = harness.environment_name()
    assert written == [f"fullsize-{name}.csv", f"fullsize-{name}.md"]
    assert "x86_64" in name or "aarch64" in name
    from vggedge.device.environment import cpu_features

    # The int8-deciding feature is in the name: two CPUs both called "AMD EPYC" once shared one table.
    best = next((f for f in harness.INT8_TIERS if f in cpu_features()), None)
    assert best is None or name.endswith(best.replace("_", "-"))
    text = (tmp_path / f"fullsize-{name}.md").read_text()
    assert "| fast | ok |" in text and "Weights: random" in text and "runtime=ai-edge-litert" in text


def test_a_peer_conversion_is_measured_or_says_why(harness, tmp_path, monkeypatch):
    """Each peer conversion is a child process: its figures, its failure, or the memory cap, as a row."""
    import peers  # importable once the harness module put benchmarks/ on the path

    ok = peers.run_child("import json; print(json.dumps({'convert_s': 1.5}))", tmp_path)
    assert ok["status"] == "ok" and ok["convert_s"] == 1.5 and ok["wall_s"] > 0 and ok["peak_rss_gb"] > 0
    failed = peers.run_child("raise SystemExit('export exploded')", tmp_path)
    assert failed["status"] == "failed: export exploded"
    monkeypatch.setattr(peers, "MEMORY_CAP_GB", 0.2)
    hog = "import time; b = bytearray(400 * 10**6); time.sleep(30)"
    grandchild = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {hog!r}])"
    capped = peers.run_child(grandchild, tmp_path)  # the memory of a converter run as a grandchild counts
    assert capped["status"].startswith("not measured: conversion passed 0 GB") and capped["wall_s"] < 20


def test_the_peer_sentence_is_computed_from_the_table(harness):
    """vggedge's fastest verified int8 file of any format against the fastest peer int8; a file that is not ok
    (here the OpenVINO one) is never the one quoted."""
    table = [
        {"recipe": "int8", "status": "ok", "p50_ms_2t": 20.0},
        {"recipe": "int8-onnx", "status": "ok", "p50_ms_2t": 16.0},
        {"recipe": "int8-openvino", "status": "failed_verification", "p50_ms_2t": 9.0},
        {"recipe": "fast", "status": "ok", "p50_ms_2t": 5.0},
        {"recipe": "OpenVINO int8 (NNCF, peer)", "status": "ok", "p50_ms_2t": 18.0},
        {"recipe": "ONNX Runtime int8 (peer)", "status": "not measured: no ONNX export"},
    ]
    (sentence, _) = harness.peer_sentence(table)
    assert "(`int8-onnx`) takes 16.0 ms per image against 18.0 ms" in sentence and "1.12× its speed" in sentence
    assert "`fast`'s fastest (`fast`) takes 5.0 ms, 3.60× faster" in sentence
    assert harness.peer_sentence(table[:4]) == []  # no peer measured: nothing claimed


def test_a_recipe_file_row_is_named_by_its_recipe(harness, tmp_path):
    """``--recipes reports/auto/recipe.toml`` puts auto's found shape beside ``fast``: its row and report folder are
    the file's own recipe name (optimize writes ``<out>/<name>/``), not the path."""
    from vggedge.recipe.schema import load_recipe

    found = load_recipe("fast").model_copy(update={"name": "auto"})
    path = tmp_path / "recipe.toml"
    path.write_text(found.to_toml())
    assert harness.recipe_name(str(path)) == "auto"
    assert harness.recipe_name("int8") == "int8"


def test_the_int8_graph_census_finds_what_runs_outside_xnnpack(harness, all_runs):
    """The interpreter keeps listing the nodes a delegate replaced; the census walks back from the output, so it
    counts what runs: on the tiny int8 model, one XNNPACK partition, and outside it the uint8 input's and output's
    QUANTIZE (XNNPACK takes no uint8-to-int8 QUANTIZE) and the int8 SOFTMAX."""
    import int8_graph  # benchmarks/ is on the path once the harness module is loaded

    every, outside, partitions = int8_graph.op_census(all_runs / "int8" / "model.tflite")
    assert every["CONV_2D"] >= 2 and every["QUANTIZE"] == 2
    assert partitions == 1
    assert outside == {"QUANTIZE": 2, "SOFTMAX": 1}
    assert sum(outside.values()) < sum(every.values())


CPUID_PROBE = r"""
#include <cpuid.h>
#include <stdio.h>
int main(void) {
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, vnni = (c >> 11) & 1, amx = (d >> 25) & 1;
    __cpuid_count(7, 1, a, b, c, d);
    printf("%u %u %u %u %u\n", avx2, avx512f, vnni, amx, (a >> 4) & 1);
    return 0;
}
"""

RUN_INT8 = """
import sys
import numpy as np
from vggedge.device.runtime import TFLiteModel
model = TFLiteModel(sys.argv[1], threads=1)
images = np.random.default_rng(0).integers(0, 256, size=(8, model.input_size, model.input_size, 3)).astype(np.float32)
np.save(sys.argv[2], np.stack([model.predict_one(image) for image in images]))
"""


@pytest.mark.skipif(
    shutil.which("gcc") is None or "cpuid_fault" not in Path("/proc/cpuinfo").read_text(),
    reason="needs gcc and Linux CPUID faulting (x86-64)",
)
def test_the_avx2_mask_hides_avx512_vnni_and_amx_and_keeps_int8_answers(all_runs, tmp_path):
    import sys

    import numpy as np

    library = benchmark_modules.load("cpuid_mask").build_library(tmp_path)
    (tmp_path / "probe.c").write_text(CPUID_PROBE)
    subprocess.run(["gcc", "-o", tmp_path / "probe", tmp_path / "probe.c"], check=True)

    def run(command: list, masked: bool) -> subprocess.CompletedProcess:
        env = os.environ | ({"LD_PRELOAD": str(library)} if masked else {})
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True)

    host = run([tmp_path / "probe"], masked=False).stdout.split()
    seen = run([tmp_path / "probe"], masked=True).stdout.split()
    assert seen == [host[0], "0", "0", "0", "0"]  # AVX2 as the host has it; AVX-512F, VNNI, AMX-INT8, AVX-VNNI hidden
    model = all_runs / "int8" / "model.tflite"
    for masked, name in ((False, "native.npy"), (True, "avx2.npy")):
        run([sys.executable, "-c", RUN_INT8, str(model), str(tmp_path / name)], masked)
    native, avx2 = np.load(tmp_path / "native.npy"), np.load(tmp_path / "avx2.npy")
    # Other kernels, the same int8 arithmetic: the same classes, scores within a few output quantization steps.
    assert (native.argmax(axis=1) == avx2.argmax(axis=1)).all()
    assert np.abs(native - avx2).max() <= 0.02
