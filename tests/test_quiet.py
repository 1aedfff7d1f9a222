"""Quiet by default: a real `vggedge` process shows vggedge's output and none of TensorFlow's own lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Lines TensorFlow, absl, oneDNN, the converter and the interpreter print from C++ on their own.
FOREIGN = re.compile(
    r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN custom operations|cudart_stub|Could not find cuda"
    r"|fully_quantize:|XNNPACK delegate|^INFO: |tensorflow/core|\.cc:\d+\]",
    re.MULTILINE,
)


def run_vggedge(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "VGGEDGE_VERBOSE"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the user's shell: nothing set
    return subprocess.run(
        [sys.executable, "-m", "vggedge", *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


def test_optimize_and_bench_show_no_foreign_log_line(tiny_h5, small_digits_dir, tmp_path):
    optimize = run_vggedge(
        *("optimize", "--recipe", "int8", "--model", tiny_h5, "--data", small_digits_dir, "--out", tmp_path),
        *("--runs", "2", "--eval-samples", "50"),
    )
    assert optimize.returncode == 0, optimize.stderr[-2000:]
    bench = run_vggedge("bench", tmp_path / "int8" / "model.tflite", "--runs", "2")
    assert bench.returncode == 0, bench.stderr[-2000:]
    for done in (optimize, bench):
        output = done.stdout + done.stderr
        assert "int8" in done.stdout and "report:" in done.stdout  # vggedge's own output is all there
        assert not FOREIGN.findall(output), FOREIGN.findall(output)[:5]
    # Not a terminal (a log, a pipe): progress as plain lines, one per stage, none of a bar's control codes.
    assert re.search(r"^Evaluating model\.tflite: \d+ in \d+ s$", optimize.stderr, re.MULTILINE), optimize.stderr
    assert "\x1b[" not in optimize.stderr


def test_verbose_keeps_them_so_the_check_above_can_fail(tiny_h5, small_digits_dir, tmp_path):
    done = run_vggedge(
        "optimize",
        "--recipe",
        "fp16",  # no calibration, no error table: TensorFlow's own start-up lines are what it must show
        "--model",
        tiny_h5,
        "--data",
        small_digits_dir,
        "--out",
        tmp_path,
        "--runs",
        "2",
        "--eval-samples",
        "50",
        "--quiet",
        "--verbose",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert FOREIGN.search(done.stdout + done.stderr)
