"""Benchmark a TFLite file with the light interpreter: size, gzip size, accuracy, latency.

Used by ``optimize`` on the workstation, right after conversion: every image at batch 1 for accuracy, then
``runs`` timed calls on one image after ``warmup``. ``bench`` on a device reads the same figures with the same
interpreter but times differently (a cool-down, a burst, then sustained interleaved rounds across its models:
:mod:`vggedge.device.bench`), so a device's p50 is not the workstation's method applied elsewhere. No TensorFlow
here.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np

from vggedge.core import defaults
from vggedge.core.formats import model_bytes
from vggedge.core.metrics import accuracy_figures, latency_summary, time_calls
from vggedge.core.report import ResultFigures
from vggedge.device.models import load
from vggedge.device.runtime import Runtime


@dataclasses.dataclass
class Measurement:
    result: ResultFigures  # the figures this module measures; callers add agreement, verification, status
    scores: np.ndarray | None
    runtime: Runtime
    threads: int
    input_dtype: str


def gzip_size(path: Path) -> int:
    """Size after gzip -9: where pruning pays (zeros compress; the flatbuffer itself stays dense)."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def model_format(format_name: str, input_dtype: str) -> str:
    """The report's ``format``: the file's format and what its input takes (uint8 pixels, or float32)."""
    return f"{format_name} ({input_dtype} input)"


def measure_model(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    threads: int | None = None,
    runs: int = defaults.RUNS,
    warmup: int = defaults.WARMUP,
    progress: bool = True,
    runtime: str | None = None,
) -> Measurement:
    """Predict every image (batch 1), then time ``runs`` invocations on the first image (none: latency null)."""
    model = load(path, threads=threads, runtime=runtime)
    scores = model.predict(images, progress=progress, description=f"Evaluating {Path(path).name}")
    model.set_input(images[0])
    timings = time_calls(model.invoke_once, warmup=warmup, runs=runs) if runs else []
    result = ResultFigures(
        format=model_format(model.model_format.name, model.input_dtype),
        size_bytes=model_bytes(path),
        gzip_bytes=gzip_size(path),
        **accuracy_figures(scores if labels is not None else None, labels if labels is not None else np.array([])),
        latency_ms=latency_summary(timings) if timings else None,
    )
    return Measurement(result, scores, model.runtime, model.threads, model.input_dtype)
