"""Which images calibrate int8 (every class in turn) and what ``keep_float = "auto"`` checks each try on."""

from __future__ import annotations

import numpy as np

from vggedge.core.data import Dataset
from vggedge.core.report import (
    AccuracyBudget,
)
from vggedge.export.fallback import Check
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.steps import StepContext


def class_balanced_order(labels: np.ndarray) -> np.ndarray:
    """Indices into ``labels`` that take every class in turn (each class's images in their split order): the first
    N calibrate from as many classes as N allows, not from the classes that happen to come first."""
    per_class = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    rounds = max((len(indices) for indices in per_class), default=0)
    return np.asarray([indices[r] for r in range(rounds) for indices in per_class if r < len(indices)], dtype=int)


def calibration_images(prepared: Prepared, count: int) -> np.ndarray:
    """``count`` images of the calibration split (checked non-empty up front), every class in turn, or the synthetic
    evaluation images of a sizes-only run."""
    if prepared.dataset is not None and len(prepared.dataset.calibration):
        calibration = prepared.dataset.calibration
        return calibration.images[class_balanced_order(calibration.labels)[:count]]
    return prepared.eval.images[:count]


def fallback_check(context: StepContext, budget: AccuracyBudget, options: OptimizeOptions) -> Check | None:
    """What keep_float = 'auto' checks each try on: the calibration split (held apart from the evaluation)."""
    held = context.held_apart
    if held is None or not len(held):
        return None
    return Check(held.images, context.held_apart_labels, budget.max_drop_pts, options.min_agreement)


def classes_without_calibration(dataset: Dataset, count: int) -> str | None:
    """A note when the calibration images used miss a class: int8's activation ranges then come from the other
    classes only (said, so a class that int8 gets wrong has its likely reason beside it)."""
    labels = dataset.calibration.labels[class_balanced_order(dataset.calibration.labels)[:count]]
    missing = [name for index, name in enumerate(dataset.class_names) if not np.any(labels == index)]
    if not missing:
        return None
    shown = ", ".join(repr(name) for name in missing[:5])
    shown += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"int8 calibrated on {count} images covering {len(dataset.class_names) - len(missing)} of "
        f"{len(dataset.class_names)} classes (none of {shown}): add images of those classes or raise "
        "--calibration-samples"
    )
