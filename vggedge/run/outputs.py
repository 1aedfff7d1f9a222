"""What a run folder holds besides the report: metadata in the model, labels, the baseline's predictions, the
evaluation images, and the int8 error table."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.atomic import write_text
from vggedge.core.data import save_split
from vggedge.core.labels import read_labels_file
from vggedge.core.metrics import (
    top1_classes,
)
from vggedge.core.progress import duration, log_line
from vggedge.core.report import (
    STATUS_OK,
    DatasetSection,
    ResultFigures,
)
from vggedge.export.layer_error import layer_errors
from vggedge.export.layer_error import summary_lines as layer_summary_lines
from vggedge.export.metadata import add_classifier_metadata
from vggedge.models.loading import Baseline
from vggedge.recipe.schema import Recipe
from vggedge.run.options import OptimizeOptions, Prepared


def with_metadata(
    flatbuffer: bytes, recipe: Recipe, baseline: Baseline, names: list[str], notes: list[str], resize: str = "stretch"
) -> bytes:
    """The model with standard TFLite metadata (image input, class names inside it; ``vggedge.export.metadata``), or as
    it was, with a note saying why, when its input is not an RGB image."""
    try:
        return add_classifier_metadata(
            flatbuffer, f"{baseline.model.name} ({recipe.name})", recipe.description or recipe.name, names, resize
        )
    except ValueError as error:
        notes.append(f"no TFLite metadata written: {error}")
        return flatbuffer


def describe_layer_error(
    model: keras.Model,
    flatbuffer: bytes,
    prepared: Prepared,
    result: ResultFigures,
    notes: list[str],
    options: OptimizeOptions,
    kept_float: str | None = None,
) -> None:
    """Each conv/dense layer's int8 error in the result (worst first), and the worst three in the notes when the
    result is not ok: the layer to look at, by the name the user gave it, and a remedy the run has not tried
    (``kept_float``: the run's own float fallback, already tried)."""
    started = time.perf_counter()
    try:
        rows = layer_errors(model, flatbuffer, prepared.eval.images)
    except Exception as error:  # the table explains a result; it never costs one
        notes.append(f"int8 error per layer not measured: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return
    result.layer_error = [row.to_dict() for row in rows]
    if result.status != STATUS_OK and rows:
        # With remedies on, the run tries the fallback itself and its remedies note says what is next
        next_step = "" if options.remedies and options.auto is None else remedy(kept_float)
        notes.append(
            ("int8 error per layer, worst first: " + "; ".join(layer_summary_lines(rows)) + ". " + next_step).strip()
        )
    if options.progress:
        log_line(f"int8 error per layer measured in {duration(time.perf_counter() - started)}")


# The stepped model's scores varying across images less than this share of the baseline's: a model collapsed
# toward a constant answer, whose int8 disagreements are rounding of near-ties, not an int8 problem.
COLLAPSE_SHARE = 0.1


def collapse_note(source_scores: np.ndarray | None, baseline_scores: np.ndarray) -> str | None:
    """A note when the recipe's Keras model (before conversion) answers nearly the same for every image."""
    if source_scores is None or not len(baseline_scores) or len(source_scores) != len(baseline_scores):
        return None
    spread = float(np.mean(np.std(source_scores, axis=0)))
    reference = float(np.mean(np.std(baseline_scores, axis=0)))
    if reference <= 0 or spread >= COLLAPSE_SHARE * reference:
        return None
    return (
        f"the recipe's Keras model collapsed toward a constant answer before conversion: its scores vary across the "
        f"evaluation images {spread / reference:.1%} as much as the baseline's (scores {source_scores.min():.3g} to "
        f"{source_scores.max():.3g}); its fine-tune lost the model, so int8 disagreements are near-ties, not an int8 "
        "problem"
    )


def remedy(kept_float: str | None) -> str:
    """The next thing to try for an int8 result that is not ok, never the one the run already tried."""
    if kept_float is None:
        return (
            'To try: --keep-float auto (keep_float = "auto" in the quantize step) keeps the worst layers in float '
            "(equalize = true, the default for int8, equalizes channel ranges first)"
        )
    return (
        f"Already tried: keep_float = {kept_float!r} (the quantize step's record says which layers stayed float) "
        "and equalization. Next: --recipe auto with this --max-drop searches a shape that keeps its accuracy"
    )


def top1_drop_pts(baseline_top1: float | None, result_top1: float | None) -> float | None:
    """How many top-1 points the result lost against the baseline (negative: it gained); None if unmeasured."""
    if baseline_top1 is None or result_top1 is None:
        return None
    return round((baseline_top1 - result_top1) * 100, 2)


def describe_dataset(prepared: Prepared) -> DatasetSection:
    if prepared.dataset is not None:
        return prepared.dataset.describe()
    return DatasetSection(name="synthetic", eval_samples=len(prepared.eval))


def class_names(prepared: Prepared, options: OptimizeOptions) -> list[str]:
    """The model's classes in output order: --labels, else the data folders' names, else the model's own
    (the sample's digits), else the indices."""
    if options.labels is not None:
        return read_labels_file(options.labels)
    if prepared.dataset is not None:
        return list(prepared.dataset.class_names)
    return list(prepared.baseline.class_names or [str(i) for i in range(prepared.baseline.classes)])


def write_baseline_predictions(folder: Path, prepared: Prepared) -> None:
    """The baseline's top-1 per eval image (by image key), so a device run can report agreement."""
    if not prepared.labels_match:
        return
    top1 = top1_classes(prepared.scores)
    payload = {
        "keys": prepared.eval.keys,
        "top1": [int(c) for c in top1],
        "baseline": dataclasses.asdict(prepared.figures),
    }
    write_text(folder / "baseline_predictions.json", json.dumps(payload) + "\n")


def export_eval_images(prepared: Prepared, out: Path) -> Path | None:
    """Write the eval split as an image folder beside the runs, for ``vggedge bench --data`` on a device."""
    if prepared.dataset is None:
        return None
    target = out / f"{prepared.dataset.name}-eval"
    save_split(prepared.eval, prepared.dataset.class_names, target)
    return target
