"""What ``optimize`` is asked (:class:`OptimizeOptions`) and what it prepares for all recipes (:class:`Prepared`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from vggedge.auto.rules import SearchOptions
from vggedge.backend.distribute import Placement, one_device
from vggedge.core import defaults
from vggedge.core.cache import default_cache_dir
from vggedge.core.data import Dataset, Split
from vggedge.core.report import (
    BaselineFigures,
)
from vggedge.models.loading import Baseline
from vggedge.recipe.schema import Recipe
from vggedge.steps import DataCounts

SYNTHETIC_IMAGES = 8  # verification/latency images when there is no labelled data (sizes-only runs)


@dataclasses.dataclass
class OptimizeOptions:
    model: str = "sample"
    weights: str | None = None
    preprocess: str | None = None
    data: Path | None = None
    eval_data: Path | None = None
    out: Path = Path("reports")
    eval_samples: int | None = None  # None: defaults.EVAL_SAMPLES from one folder, all of an evaluation folder
    calibration_samples: int = defaults.CALIBRATION_SAMPLES
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP
    threads: int | None = None
    min_agreement: float = defaults.MIN_AGREEMENT
    max_drop: float | None = None  # None: the recipe's own budget, else defaults.MAX_DROP_PTS
    auto: SearchOptions | None = None  # `--recipe auto`: search a shape first (vggedge.auto.searcher), then run it
    max_epochs: int | None = None  # --max-epochs: the recipes were cut to it (said in every report's notes)
    labels: Path | None = None  # --labels: class names for a model without data (one a line)
    resize: str = "stretch"  # --resize: how images are fitted to the input (vggedge.core.images.RESIZE_MODES)
    remedies: bool = True  # a recipe that misses tries the remedies that can help (vggedge.run.remedies)
    remedy_minutes: float = defaults.REMEDY_MINUTES  # their time cap, all remedies of one recipe together
    skip_inapplicable: bool = False  # `--recipe all`: leave out recipes that cannot apply to this model
    progress: bool = True
    seed: int = defaults.SEED
    cache: Path = dataclasses.field(default_factory=default_cache_dir)  # the sample's images and model
    offline: bool = False  # no download attempts (Keras' ImageNet weights): fail at once instead
    placement: Placement = dataclasses.field(default_factory=one_device)  # where fine-tuning runs (distribute.py)


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
