"""Whether a fine-tune converged, read from its loss per epoch: shared by the steps (which stop on a loss that
rose at the end) and ``report.md`` (which flags it), so the two never disagree."""

from __future__ import annotations

# The last epoch's loss this many times the lowest before it, and at least ROSE_BY above it: a fine-tune that
# ended worse than it was (a 0.368 → 0.869 last epoch on a nested VGG19), not the noise of a healthy one.
ROSE_FACTOR = 1.5
ROSE_BY = 0.05
FLAT_RELATIVE = 1e-3  # the loss moved less than this share of itself over every epoch


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
