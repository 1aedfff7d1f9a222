"""`vggedge bench` on a device: no TensorFlow, same figures as optimize, both runtimes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from no_tensorflow import BLOCK_TENSORFLOW

pytestmark = pytest.mark.slow

# `vggedge ARGS` where TensorFlow cannot be imported.
NO_TENSORFLOW = BLOCK_TENSORFLOW + textwrap.dedent(
    """
    from vggedge.cli import main
    sys.argv = ["vggedge"] + sys.argv[1:]
    try:
        main()
    finally:
        leaked = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")]
        assert not leaked, leaked
    """
)


def bench_without_tensorflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "bench", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )


def test_bench_without_tensorflow_matches_optimize(all_runs, digits_dir, tmp_path):
    done = bench_without_tensorflow(
        all_runs / "int8" / "model.tflite",
        "--data",
        digits_dir,
        "--runs",
        "5",
        "--threads",
        "2",
        "--out",
        tmp_path / "pi",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    device = json.loads((tmp_path / "pi" / "report.json").read_text())
    workstation = json.loads((all_runs / "int8" / "report.json").read_text())
    assert device["schema"] == "vggedge.report/1" and device["kind"] == "device"
    assert device["environment"]["tensorflow"] is None
    assert device["environment"]["runtime"] == "ai-edge-litert" and device["environment"]["threads"] == 2
    assert device["dataset"]["eval_samples"] == workstation["dataset"]["eval_samples"] == 360
    assert device["result"]["top1"] == workstation["result"]["top1"]
    assert device["result"]["agreement"] == workstation["result"]["agreement"]
    assert device["result"]["size_bytes"] == workstation["result"]["size_bytes"]
    assert device["recipe"]["name"] == "int8" and device["baseline"] == workstation["baseline"]
    assert device["ratios"]["speedup"] is not None


def test_bench_latency_only_without_data(all_runs, tmp_path):
    done = bench_without_tensorflow(all_runs / "fp16" / "model.tflite", "--runs", "3", "--out", tmp_path / "b", "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["result"]["top1"] is None and report["result"]["latency_ms"]["runs"] == 3
    assert report["result"]["format"] == "tflite (float32 input)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not a model at all"), "is not a model vggedge runs"),
        (lambda p: None, "does not exist"),
    ],
)
def test_bench_refuses_bad_files(tmp_path, make, message):
    path = tmp_path / "m.tflite"
    make(path)
    done = bench_without_tensorflow(path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_bench_refuses_truncated_model(all_runs, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes((all_runs / "int8" / "model.tflite").read_bytes()[:5000])
    done = bench_without_tensorflow(path)
    assert done.returncode == 2 and "could not be loaded" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / f"bench-{'x'}").exists()


def test_bench_refuses_data_that_does_not_fit(all_runs, tmp_path):
    from PIL import Image

    for name in "ab":
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "d" / name / "x.png")
    done = bench_without_tensorflow(
        all_runs / "int8" / "model.tflite", "--data", tmp_path / "d", "--out", tmp_path / "o"
    )
    assert done.returncode == 2 and "the data has 2 classes" in done.stderr
    assert not (tmp_path / "o").exists()


def test_bench_many_models_and_threads_interleaved_with_a_recommendation(all_runs, digits_dir, tmp_path):
    """Two models × two thread counts in one run: a report each (burst and sustained latency, the device check),
    one table, and the recommendation that `compare`'s budget rule gives."""
    env = {**os.environ, "VGGEDGE_COOLDOWN": "0.2", "VGGEDGE_SUSTAIN": "0.5"}
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "bench", str(all_runs / "int8" / "model.tflite"),
         str(all_runs / "fp16" / "model.tflite"), "--data", str(digits_dir), "--threads", "1,2", "--runs", "6",
         "--burst-runs", "4", "--out", str(tmp_path / "pi"), "-q"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted(p.name for p in (tmp_path / "pi").iterdir() if p.is_dir())
    assert folders == ["fp16-1t", "fp16-2t", "int8-1t", "int8-2t"]
    reports = {name: json.loads((tmp_path / "pi" / name / "report.json").read_text()) for name in folders}
    for name, report in reports.items():
        assert report["environment"]["threads"] == int(name[-2])
        assert report["result"]["latency_ms"]["runs"] == 6 and report["result"]["burst_latency_ms"]["runs"] == 4
        assert report["environment"]["device_check"]["kernel_machine"] == "x86_64"
        assert report["result"]["status"] == "ok"  # verified where optimize ran; within the budget here too
    workstation = json.loads((all_runs / "int8" / "report.json").read_text())
    assert reports["int8-1t"]["result"]["top1"] == reports["int8-2t"]["result"]["top1"] == workstation["result"]["top1"]
    table = json.loads((tmp_path / "pi" / "bench.json").read_text())
    assert len(table["rows"]) == 4
    fastest = min(table["rows"], key=lambda row: row["p50_ms"])
    assert table["recommendation"].startswith(f"{fastest['model']} at {fastest['threads']} thread")
    slower = [
        r
        for r in table["rows"]
        if r["model"] == "int8"
        and r["p50_ms"]
        >= next(f["p50_ms"] for f in table["rows"] if f["model"] == "fp16" and f["threads"] == r["threads"])
    ]
    assert len(table["lines"]) == len(slower)  # one line for each thread count where int8 is no faster than fp16
    assert "Recommendation:" in done.stdout and "burst ms" in done.stdout
    # `compare` reads them like any other device reports, and names the thread count it recommends.
    compared = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "compare", str(tmp_path / "pi"), "--out", str(tmp_path / "cmp")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-2000:]
    fastest_pick = json.loads((tmp_path / "cmp" / "compare.json").read_text())["recommendations"]
    assert any(re.search(r" at [12] threads?$", r["recipe"] or "") for r in fastest_pick), fastest_pick


def test_bench_a_run_folder_benches_every_recipe_in_it(all_runs, tmp_path):
    done = bench_without_tensorflow(all_runs, "--threads", "2", "--runs", "2", "--burst-runs", "1",
                                    "--out", tmp_path / "all", "-q")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # Every file of every recipe (the run wrote --formats all): the TFLite model as the recipe, the others by format
    named = (("model.tflite", ""), ("model.onnx", "-onnx"), ("model.xml", "-openvino"))
    models = sorted(f"{p.parent.name}{suffix}" for name, suffix in named for p in all_runs.glob(f"*/{name}"))
    assert len(models) >= 2 * len(list(all_runs.glob("*/model.tflite")))
    assert sorted(p.name for p in (tmp_path / "all").iterdir() if p.is_dir()) == [f"{m}-2t" for m in models]
    assert (tmp_path / "all" / "bench.md").read_text().count("\n| ") == len(models) + 1  # header + a row each


def test_bench_refuses_bad_thread_counts_and_folders_without_models(tmp_path):
    for args, words in (
        (["m.tflite", "--threads", "1,x"], "--threads takes counts"),
        (["m.tflite", "--threads", "0"], "at least 1"),
        ([str(tmp_path)], "holds no model.tflite"),
        ([], "give a model file (.tflite, .onnx or .xml"),
    ):
        done = bench_without_tensorflow(*args)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
