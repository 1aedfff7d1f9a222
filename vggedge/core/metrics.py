"""Figures from predictions and timings: accuracy, agreement, latency percentiles. No TensorFlow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from vggedge.core.report import Latency, Top1Change

BOOTSTRAP_RESAMPLES = 2000


def as_class_scores(outputs: np.ndarray) -> np.ndarray:
    """(N, C) scores; a 1-unit sigmoid output becomes the two columns [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def top1_classes(outputs: np.ndarray) -> np.ndarray:
    """The predicted class per image (a 1-unit sigmoid output counts as two classes)."""
    return np.argmax(as_class_scores(outputs), axis=1)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Fraction of images whose label is among the k best scores; None when k > classes or no images."""
    scores = as_class_scores(scores)
    if len(labels) == 0 or k > scores.shape[1]:
        return None
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Fraction of images on which two models' top-1 classes agree."""
    if len(a) == 0:
        return None
    return float(np.mean(top1_classes(a) == top1_classes(b)))


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) == 0:
        return None
    return float(np.max(np.abs(as_class_scores(a) - as_class_scores(b))))


def time_calls(call: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Milliseconds per call over ``runs`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000.0)
    return timings


def adaptive_runs(call: Callable[[], object], seconds: float, runs: int, cap: int = 5000, warmup: int = 2) -> int:
    """How many calls fill ``seconds`` (at least ``runs``, at most ``cap``), from ``warmup`` untimed calls and the p50
    of three timed ones: a sub-millisecond model's median needs hundreds of samples before it stops moving."""
    once = latency_summary(time_calls(call, warmup=warmup, runs=3)).p50
    return min(cap, max(runs, int(seconds * 1000 / max(once, 1e-3))))


def time_interleaved(
    calls: list[Callable[[], object]], min_seconds: float, min_rounds: int, max_rounds: int = 5000
) -> list[Latency]:
    """Each call's latency from rounds that invoke every call in turn, for at least ``min_seconds`` in all: on a
    shared machine a burst of load slows all of them alike instead of deciding which one looks faster."""
    once = sum(latency_summary(time_calls(call, warmup=2, runs=3)).p50 for call in calls)
    rounds = min(max_rounds, max(min_rounds, int(min_seconds * 1000 / max(once, 1e-3))))
    timings: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, times in zip(calls, timings, strict=True):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000.0)
    return [latency_summary(times) for times in timings]


def latency_summary(timings_ms: list[float]) -> Latency:
    """The report's ``latency_ms`` section: p50/p90 (and the raw count) of per-image latency."""
    values = np.asarray(timings_ms)
    return Latency(
        p50=round(float(np.percentile(values, 50)), 3),
        p90=round(float(np.percentile(values, 90)), 3),
        runs=int(len(values)),
    )


def accuracy_figures(scores: np.ndarray | None, labels: np.ndarray) -> dict:
    """top1/top5 of scores against labels (null when not measurable)."""
    if scores is None or len(labels) == 0:
        return {"top1": None, "top5": None}
    return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5)}


def mcnemar_exact_p(baseline_only: int, result_only: int) -> float:
    """Two-sided exact McNemar test: under "no difference", each image that only one model gets right
    is equally likely to favour either, so the smaller count is binomial(n, 1/2)."""
    n = baseline_only + result_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(baseline_only, result_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_change(
    baseline_scores: np.ndarray, result_scores: np.ndarray, labels: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> Top1Change | None:
    """The top-1 change (points) with a paired bootstrap 95% interval and McNemar's exact p.

    Paired: each resample draws images, and both models' answers on a drawn image come along, so the
    interval reflects how the two differ on the same images, not how hard the images are. Seeded: the
    same predictions give the same interval."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return None
    base = top1_classes(baseline_scores) == labels
    result = top1_classes(result_scores) == labels
    diff = result.astype(np.float32) - base.astype(np.float32)
    rng = np.random.default_rng(0)
    means = np.concatenate(
        [diff[rng.integers(0, len(diff), (chunk, len(diff)))].mean(axis=1) for chunk in _chunks(resamples, len(diff))]
    )
    low, high = np.percentile(means * 100, [2.5, 97.5])
    baseline_only, result_only = int(np.sum(base & ~result)), int(np.sum(~base & result))
    return Top1Change(
        delta_pts=round(float(diff.mean() * 100), 2),
        ci95_pts=[round(float(low), 2), round(float(high), 2)],
        mcnemar_p=round(mcnemar_exact_p(baseline_only, result_only), 4),
        baseline_only=baseline_only,
        result_only=result_only,
        images=len(labels),
        resamples=resamples,
    )


def _chunks(resamples: int, images: int, budget: int = 4_000_000) -> list[int]:
    """Resamples per chunk so that one chunk's index array stays under ``budget`` entries."""
    per_chunk = max(1, budget // max(1, images))
    return [min(per_chunk, resamples - start) for start in range(0, resamples, per_chunk)]
