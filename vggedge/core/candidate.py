"""One shape the automatic search measured (:class:`Candidate`): written by the search (:mod:`vggedge.auto`),
read back from a report's ``search`` section by :mod:`vggedge.core.report` to render it. No TensorFlow."""

from __future__ import annotations

import dataclasses

# The two ways a validated shape passes, as its record names them (Candidate.passed_by; vggedge.auto.rules)
PASSED_BY_BOUND = "search split: drop + 1 SE within the budget"
PASSED_BY_BOTH = "search split and held-apart images both within the budget"


@dataclasses.dataclass
class Candidate:
    """One measured shape: where the search went, and why it kept or left it."""

    iteration: int
    changed_block: int | None  # 1-based block this candidate thinned; None for the starting points
    block_ratios: list[float]
    head: str  # "kept" or "gap"
    quantization: str
    latency_ms: float | None
    size_bytes: int | None  # None: screened in float, not converted
    macs: int
    weights: int  # conv and dense kernel weights: with the MACs, what the latency model is fitted on
    search_top1: float
    drop_pts: float
    kept: bool = False
    timed_on: str = ""
    seconds: float = 0.0
    # --goal latency: the current (kept) model timed beside it, interleaved, so machine noise hits both alike;
    # speedup = reference_ms / latency_ms, and only a candidate measured faster side by side (> 1) is a step
    reference_ms: float | None = None
    speedup: float | None = None
    # "search" (kept under --max-drop), "stretch" (under STRETCH_FACTOR x --max-drop, a proposal), "validated" (the
    # shape after the final recipe's fine-tunes: its search_top1 is what the validation decided on)
    stage: str = "search"
    # Search-split images only the baseline got right (lost) and only this shape got right (gained): the paired
    # counts the drop comes from, and its standard error (drop_bound)
    lost: int = 0
    gained: int = 0
    # A validation: the drop plus VALIDATION_STANDARD_ERRORS standard errors, and whether that is within --max-drop
    drop_bound_pts: float | None = None
    # ... and its top-1 drop on the held-apart images (the calibration split), scored with the same file
    held_apart_drop_pts: float | None = None
    held_apart_images: int | None = None
    passed: bool | None = None
    passed_by: str | None = None  # which rule passed it (vggedge.auto.rules.validation_passes)
    stopped: str | None = None  # a validation whose recipe stopped at a step's own check: why
    # Seconds per stage of this candidate (refit, convert, score, time; a validation's fine-tunes as "build"): where
    # the search's time goes, per shape
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    # Scored in float only (the refitted Keras model on the search split), not converted nor timed: where a conversion
    # costs more than a float pass (SCREEN_FACTOR), every candidate is screened so and only those within the bar
    # are converted, best first, until one is kept
    screened: bool = False

    @classmethod
    def from_record(cls, record: dict) -> Candidate:
        """A candidate as a report's ``search.candidates`` holds it; a figure an older report lacks is None."""
        fields = dataclasses.fields(cls)
        known = {f.name: record[f.name] for f in fields if f.name in record}
        missing = {f.name: None for f in fields if f.name not in record and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING}  # fmt: skip
        return cls(**known, **missing)

    def figure(self, goal: str) -> float:
        value = self.latency_ms if goal == "latency" else self.size_bytes
        return float("inf") if value is None else float(value)
