"""What the search measured: one :class:`~vggedge.core.candidate.Candidate` per shape, the
:class:`SearchResult`, and the report's ``search`` section (:meth:`SearchResult.describe`), Pareto front included."""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.auto.rules import (
    FINAL_QUANTIZATION_MARGIN,
    GAP_TIE_SPEED,
    LEVELS,
    STRETCH_FACTOR,
    VALIDATION_STANDARD_ERRORS,
    VALIDATION_STATISTICS,
    Goal,
    SearchOptions,
    search_source,
)
from vggedge.auto.timing import Timed
from vggedge.backend.keras_env import keras
from vggedge.core.candidate import Candidate
from vggedge.recipe.schema import Recipe


@dataclasses.dataclass
class SearchResult:
    recipe: Recipe
    best: Candidate
    candidates: list[Candidate]
    seconds: float
    stopped: str  # why the search ended
    search_images: int
    tune_images: int
    baseline_search_top1: float
    final_step: float
    stretch_stopped: str = ""  # why the stretch ended ("" when there was no time for it)
    cut_short: bool = False  # --max-epochs cut the found recipe's fine-tunes
    validations: int = 0
    chosen: str = ""  # which shape the search returned, and why (a validated one, or the start when none passed)
    returned_start: bool = False  # the search returned its starting shape (nothing proposed, or no validation passed)
    gap_stopped: str | None = None  # the GAP start's head step stopped by its own check: why (the head was kept)
    screening: dict | None = None  # whether candidates were screened in float first, and the two costs that decided
    time_split: dict | None = None  # the validations' planned time, and what the descents and validations took

    def faster_unvalidated(self, max_drop_pts: float, limit: int = 3) -> list[Candidate]:
        """When the search returns its starting shape (no validation passed, or none ran): the shapes it measured
        within the budget on the search split and faster than that one, fastest first, one per shape: what the
        validations did not confirm, for the report to name. Neither the returned shape itself (timed again in
        another round) nor a shape whose validation ran and failed: more time would not validate those."""
        if not self.returned_start or self.best.latency_ms is None:
            return []
        failed = {(tuple(c.block_ratios), c.head) for c in self.candidates if c.stage == "validated" and not c.passed}
        seen, found = {(tuple(self.best.block_ratios), self.best.head), *failed}, []
        measured = [c for c in self.candidates if c.stage in ("search", "stretch") and c.latency_ms is not None]
        for c in sorted(measured, key=lambda c: c.latency_ms):
            shape = (tuple(c.block_ratios), c.head)
            if c.drop_pts <= max_drop_pts and c.latency_ms < self.best.latency_ms and shape not in seen:
                seen.add(shape)
                found.append(c)
        return found[:limit]

    def describe(self, goal: Goal, options: SearchOptions) -> dict:
        """The report's ``search`` section."""
        faster = self.faster_unvalidated(options.max_drop_pts)
        return {
            "goal": goal,
            "max_drop_pts": options.max_drop_pts,
            "step": options.step,
            "final_step": round(self.final_step, 4),
            "levels_removed": list(LEVELS),
            "final_quantization_margin": FINAL_QUANTIZATION_MARGIN,
            "gap_tie_speed": round(GAP_TIE_SPEED, 4),
            "seconds": round(self.seconds, 1),
            "stopped": self.stopped,
            "stretch": {
                "bar_pts": round(STRETCH_FACTOR * options.max_drop_pts, 3),
                "stopped": self.stretch_stopped or "no time left after the search",
            },
            "validation": {
                "validations": self.validations,
                "validated_with": "the found recipe's fine-tunes from the baseline, on the training images outside "
                "the search split; top-1 on the search split",
                "rule": f"drop + {VALIDATION_STANDARD_ERRORS:g} standard error(s) of the paired drop <= max_drop_pts "
                "on the search split, or the drop <= max_drop_pts on both the search split and the held-apart images",
                "standard_errors": VALIDATION_STANDARD_ERRORS,
                "statistics": VALIDATION_STATISTICS,
                "chosen": self.chosen,
                "time": self.time_split,
            },
            "gap_start_stopped": self.gap_stopped,
            "screening": self.screening,
            "complete": True,
            "images": {"search": self.search_images, "reconstruction": self.tune_images},
            "search_from": search_source(options),
            "repair": "least-squares refit of the layers after each cut (vggedge.steps.reconstruct)",
            "baseline_search_top1": round(self.baseline_search_top1, 4),
            "ranked_on": f"search split ({search_source(options)}; never the evaluation images)",
            "latency_from": self.best.timed_on,
            # no validation confirmed them: the fastest shapes within the budget on the search split (see notes)
            "faster_unvalidated": [
                {
                    "block_ratios": c.block_ratios,
                    "head": c.head,
                    "latency_ms": c.latency_ms,
                    "drop_pts": c.drop_pts,
                    "times_faster": round(self.best.latency_ms / c.latency_ms, 2),
                }
                for c in faster
            ],  # fmt: skip
            "best": dataclasses.asdict(self.best),
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
            "pareto": pareto_front(self.candidates, goal),
        }


def pareto_front(candidates: list[Candidate], goal: Goal) -> list[int]:
    """Indices of the candidates no other beats on both the goal figure and search-split top-1."""
    front = []
    for i, c in enumerate(candidates):
        if c.screened:  # no measured figure to rank on
            continue
        dominated = any(
            o.figure(goal) <= c.figure(goal)
            and o.search_top1 >= c.search_top1
            and (o.figure(goal) < c.figure(goal) or o.search_top1 > c.search_top1)
            for o in candidates
            if not o.screened
        )
        if not dominated:
            front.append(i)
    return front


@dataclasses.dataclass
class Shape:
    """Where a descent stands: the kept candidate, its model, its filters as indices into the search's starting
    model, the files it was timed as, and its level per block."""

    candidate: Candidate
    model: keras.Model | None  # None: a validation stopped by a step's check (nothing built to measure)
    kept: dict[str, np.ndarray]
    timed: Timed | None
    levels: list[int]
