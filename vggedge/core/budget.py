"""The accuracy budget rule shared by ``compare`` and ``bench``'s summary, so the two never disagree."""

from __future__ import annotations

from vggedge.core import defaults
from vggedge.core.report import STATUS_OK, STATUS_OVER_BUDGET

BASELINE = "baseline (float32)"  # the baseline's row in a comparison: never a recommendation


def within_budget(row: dict, max_drop: float | None) -> bool:
    """Verified, and top-1 fell no more than the budget (``max_drop``, else the report's own, else the default).

    A result whose accuracy was not measured (random weights, no data) counts when its status is ok."""
    if row.get("recipe") == BASELINE or row.get("status") not in (STATUS_OK, STATUS_OVER_BUDGET):
        return False
    delta = row.get("delta_top1_pts")
    if delta is None:
        return row["status"] == STATUS_OK
    budget = max_drop if max_drop is not None else (row.get("budget_pts") or defaults.MAX_DROP_PTS)
    return -delta <= budget
