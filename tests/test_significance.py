"""The top-1 change with its uncertainty: a paired bootstrap interval and McNemar's exact test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vggedge.core.metrics import mcnemar_exact_p, paired_change


def one_hot(classes: np.ndarray, count: int = 10) -> np.ndarray:
    return np.eye(count, dtype=np.float32)[classes]


@pytest.mark.parametrize(
    ("baseline_only", "result_only", "p"),
    [
        (0, 0, 1.0),
        (5, 0, 2 / 32),
        (0, 5, 2 / 32),
        (3, 3, 1.0),
        (10, 2, 2 * sum(math.comb(12, k) for k in range(3)) / 4096),
    ],
)
def test_mcnemar_is_the_two_sided_exact_binomial(baseline_only, result_only, p):
    assert mcnemar_exact_p(baseline_only, result_only) == pytest.approx(p)


def test_a_change_of_a_few_images_is_not_resolved_by_a_small_set():
    labels = np.arange(120) % 10
    result = labels.copy()
    result[:1] = (labels[:1] + 1) % 10  # one image of 120 lost: -0.83 points
    change = paired_change(one_hot(labels), one_hot(result), labels)
    assert change.delta_pts == pytest.approx(-0.83, abs=0.01)
    low, high = change.ci95_pts
    assert low < change.delta_pts <= high <= 0.0 and high == 0.0  # the interval reaches "no change"
    assert (change.baseline_only, change.result_only, change.images) == (1, 0, 120)
    assert change.mcnemar_p == 1.0  # one discordant image says nothing


def test_a_large_consistent_loss_is_resolved_and_the_interval_is_paired():
    labels = np.arange(1000) % 10
    baseline = labels.copy()
    baseline[:100] = (labels[:100] + 1) % 10  # the baseline misses 100 hard images
    result = baseline.copy()
    result[100:150] = (labels[100:150] + 1) % 10  # the result also misses 50 more
    change = paired_change(one_hot(baseline), one_hot(result), labels)
    assert change.delta_pts == -5.0
    low, high = change.ci95_pts
    assert -7.0 < low < -5.0 < high < -3.0  # about ±1.4 points: sqrt(50)/1000, not the unpaired ±2.7
    assert change.mcnemar_p < 1e-10
    assert paired_change(one_hot(baseline), one_hot(result), labels) == change  # seeded: same answer


def test_no_labels_no_interval():
    assert paired_change(np.zeros((0, 10)), np.zeros((0, 10)), np.zeros(0)) is None
