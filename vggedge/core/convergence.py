"""Whether a fine-tune converged, read from its loss per epoch: shared by the steps (which stop on a loss that
rose at the end or stayed flat above its floor) and ``report.md`` (which flags both), so the two never disagree.

A distillation loss against soft targets cannot fall below the targets' own entropy (cross-entropy = entropy +
KL divergence): a loss that is flat *at* that floor has converged (the GAP head's least-squares start often
lands there), a loss flat *above* it is stuck (a learning rate of zero in effect, frozen layers, dead features).
"""

from __future__ import annotations

import numpy as np

# The last epoch's loss this many times the lowest before it, and at least ROSE_BY above it: a fine-tune that
# ended worse than it was (a 0.368 → 0.869 last epoch on a nested VGG19), not the noise of a healthy one.
ROSE_FACTOR = 1.5
ROSE_BY = 0.05
FLAT_RELATIVE = 1e-3  # the loss moved less than this share of itself over every epoch
# A flat loss this far above its floor (nats) is stuck rather than converged: a KL divergence of 0.01 between
# a model and its teacher is a fraction of a point of agreement.
STUCK_ABOVE_FLOOR = 0.01


def rose_at_end(losses: list[float] | None) -> str | None:
    """Why the loss is said to have risen at the end (lowest and last), or None."""
    if not losses or len(losses) < 3:
        return None
    best = min(losses[:-1])
    last = losses[-1]
    if last > ROSE_FACTOR * best and last - best > ROSE_BY:
        return f"lowest {best:.4g} at epoch {losses.index(best) + 1}, {last:.4g} at the last"
    return None


def flat(losses: list[float] | None) -> bool:
    """The loss did not move over three or more epochs (to a thousandth of itself)."""
    return bool(losses) and len(losses) > 2 and max(losses) - min(losses) <= FLAT_RELATIVE * max(abs(losses[0]), 1e-9)


def stuck(losses: list[float] | None, floor: float | None) -> str | None:
    """Why a flat loss is said to be stuck (its level and its floor), or None when it moved or sits at its floor."""
    if not flat(losses):
        return None
    level, floor = losses[-1], floor or 0.0
    if level - floor <= STUCK_ABOVE_FLOOR:
        return None
    return f"{level:.4g} for all {len(losses)} epochs, {level - floor:.3g} above the lowest it can reach ({floor:.4g})"


def loss_floor(targets: np.ndarray, kind: str) -> float:
    """The lowest mean loss reachable against ``targets``: their entropy for soft targets under cross-entropy
    (``kind`` "categorical" or "binary"), 0 for hard labels and squared error."""
    p = np.clip(np.asarray(targets, np.float64), 1e-7, 1 - 1e-7)
    if kind == "categorical" and p.ndim == 2 and p.shape[1] > 1:
        return float(np.mean(-(p * np.log(p)).sum(axis=1)))
    if kind == "binary":
        return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
    return 0.0
