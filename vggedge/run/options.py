"""What ``optimize`` is asked (:class:`OptimizeOptions`) and what it prepares for all recipes (:class:`Prepared`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vggedge.backend.distribute import one_device
from vggedge.core.cache import default_cache_dir
from vggedge.core.data import Dataset, Split
from vggedge.core.keywords import SEARCH, OptimizeInputs, OptimizeKeywords, declared
from vggedge.core.report import BaselineFigures
from vggedge.models.loading import Baseline
from vggedge.recipe.schema import Recipe
from vggedge.steps import DataCounts

SYNTHETIC_IMAGES = 8  # verification/latency images when there is no labelled data (sizes-only runs)
# Asked, but resolved before the run into something else: the recipes (keep_float), the placement (replicas),
# the search's options (auto)
RESOLVED_BEFORE = {"recipe", "keep_float", "replicas"}


def _run_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """One field per declared option the run reads, its default the API's, then what the API derives."""
    fields = []
    for option in [*declared(OptimizeInputs), *declared(OptimizeKeywords)]:
        if option.name in RESOLVED_BEFORE or option.opt.panel == SEARCH:
            continue
        default = option.opt.default
        if option.name == "resize":
            default = "stretch"  # resolved by the API (vggedge.run.requests.resize_for) before a run
        field = dataclasses.field(default=default)
        if option.name == "cache":
            field = dataclasses.field(default_factory=default_cache_dir)
        elif option.name == "formats":  # resolved by the API (vggedge.export.formats.resolve_formats)
            field = dataclasses.field(default_factory=lambda: ["tflite"])
        fields.append((option.name, option.kind, field))
    return fields + [
        ("auto", Any, dataclasses.field(default=None)),  # --recipe auto: a SearchOptions (vggedge.auto.rules)
        ("skip_inapplicable", bool, dataclasses.field(default=False)),  # recipe "all": leave out what cannot apply
        ("placement", Any, dataclasses.field(default_factory=one_device)),  # where fine-tuning runs (distribute)
    ]


OptimizeOptions = dataclasses.make_dataclass("OptimizeOptions", _run_fields())
OptimizeOptions.__module__ = __name__  # pickled by name (make_dataclass takes module= from Python 3.12)
OptimizeOptions.__doc__ = """What one ``optimize`` run was asked, resolved: a field per option of
:class:`~vggedge.core.keywords.OptimizeKeywords` the run reads (made from those declarations, so an option is
declared once), then ``auto`` (the search's options), ``skip_inapplicable`` and ``placement``."""


@dataclasses.dataclass
class Prepared:
    """The baseline model, the data and the baseline's measured figures: shared by every recipe."""

    baseline: Baseline
    dataset: Dataset | None
    eval: Split
    labels_match: bool
    counts: DataCounts
    figures: BaselineFigures
    scores: np.ndarray
    notes: list[str]
    recipes: list[Recipe]  # the recipes that passed their checks, in order
    skipped: list[str]  # one line per recipe left out (only with skip_inapplicable)
    cut_short: set[str] = dataclasses.field(default_factory=set)  # recipes whose fine-tunes --max-epochs cut
    # Where steps check a fine-tune in inference mode and watch its plateau, in place of the calibration split
    # (vggedge.steps.context.StepContext.held_apart): auto's --search-data, images the baseline never trained on.
    check_images: Split | None = None
