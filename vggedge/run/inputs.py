"""Input checks of an ``optimize`` run, before any work: output folder, data, classes, labels, every recipe.

Each raises :class:`vggedge.UserError` (one line; exit 2 at the CLI) and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggedge.auto.rules import SearchOptions
from vggedge.core.data import Dataset, Split, load_dataset
from vggedge.core.errors import DataError, OutputError, UserError
from vggedge.core.formatting import count
from vggedge.models.loading import Baseline
from vggedge.recipe.schema import Recipe
from vggedge.run.options import SYNTHETIC_IMAGES, OptimizeOptions
from vggedge.steps import DataCounts, check_recipe


def check_writable(folder: Path) -> None:
    """Fail early (before minutes of work) if ``folder`` cannot be created or written; create nothing."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "a file is in the way" if not existing.is_dir() else "permission denied"
        raise OutputError(
            f"cannot write to output folder {folder} ({reason} at {existing}): pass --out DIR to a writable folder"
        )


def synthetic_split(size: int, count: int = SYNTHETIC_IMAGES) -> Split:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    return Split(images, np.zeros(count, dtype=np.int64), [f"synthetic/{i}" for i in range(count)])


def load_data(options: OptimizeOptions, baseline: Baseline | None) -> Dataset | None:
    if options.eval_data is not None and options.data is None:
        raise UserError("--eval-data names the evaluation images; also give --data DIR with the training images")
    if options.data is None:
        if options.model == "sample":
            from vggedge.models.sample import load_sample_dataset

            return load_sample_dataset(options.cache, progress=options.progress)
        return None
    size = int(baseline.model.input_shape[1]) if baseline else 32
    return load_dataset(
        options.data,
        size,
        options.eval_samples,
        options.calibration_samples,
        options.eval_data,
        progress=options.progress,
        resize=options.resize,
    )


def check_classes(baseline: Baseline, dataset: Dataset) -> None:
    """The data's classes are the model's: as many, and the same names where the model knows its names."""
    if baseline.classes != len(dataset.class_names):
        shown = ", ".join(dataset.class_names[:5]) + ("…" if len(dataset.class_names) > 5 else "")
        raise DataError(
            f"the data has {count(len(dataset.class_names), 'class', 'classes')} ({shown}) but the model "
            f"outputs {baseline.classes}: use data with one subfolder per model class"
        )
    if baseline.class_names and baseline.class_names != dataset.class_names:
        raise DataError(
            f"the data's class folders {dataset.class_names} do not match the model's classes {baseline.class_names}"
        )


def check_labels(names: list[str], baseline: Baseline, dataset: Dataset | None) -> None:
    """``--labels`` names the model's classes: as many as it outputs, and the data's own when there is data."""
    if len(names) != baseline.classes:
        raise DataError(f"--labels names {len(names)} classes but the model outputs {baseline.classes}")
    if dataset is not None and names != list(dataset.class_names):
        raise DataError(
            f"--labels {names[:3]}… differs from the data's class folders {dataset.class_names[:3]}…: "
            "with --data the folders name the classes; leave --labels out"
        )


def check_recipes(
    recipes: list[Recipe], baseline: Baseline, counts: DataCounts, skip: bool
) -> tuple[list[Recipe], list[str]]:
    """Every step of every recipe checked before any work: refuse the run, or (``skip``) leave recipes out."""
    runnable, skipped = [], []
    for recipe in recipes:
        try:
            check_recipe(recipe, baseline.anatomy, counts)
            runnable.append(recipe)
        except UserError as error:
            if not skip:
                raise
            skipped.append(str(error))
    if not runnable:
        raise UserError(f"no recipe applies to this model and data: {skipped[0] if skipped else 'none given'}")
    return runnable, skipped


def check_auto(baseline: Baseline, counts: DataCounts, auto: SearchOptions) -> None:
    """Before any work: a conv block to thin, labelled data, and training images for both the search split
    and the fine-tunes."""
    from vggedge.auto.rules import check_searchable, search_split_size
    from vggedge.steps.context import MIN_TRAINING_IMAGES

    check_searchable(baseline.anatomy)
    if counts.synthetic or counts.train == 0:
        raise UserError("--recipe auto ranks shapes by accuracy: it needs a trained model and --data with images")
    carved = search_split_size(auto, counts.train)
    if auto.search_data is None and counts.train < carved + MIN_TRAINING_IMAGES:
        raise UserError(
            f"--recipe auto carves {carved} search images from the {counts.train} training images and "
            f"needs {MIN_TRAINING_IMAGES} more to fine-tune on: add images, lower --search-images, or give "
            f"--search-data DIR (held-out labelled images; then all {counts.train} train)"
        )
