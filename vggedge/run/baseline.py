"""The float32 Keras baseline, measured once per run, and the step context every recipe starts from."""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.keras_env import best_device, keras, tf
from vggedge.core.data import FileSplit, Split
from vggedge.core.errors import UserError
from vggedge.core.labels import read_labels_file
from vggedge.core.metrics import (
    accuracy_figures,
    latency_summary,
    time_calls,
)
from vggedge.core.progress import log_line
from vggedge.core.report import (
    BaselineFigures,
    Latency,
)
from vggedge.models.flops import flops
from vggedge.models.loading import Baseline, load_baseline
from vggedge.recipe.schema import Recipe
from vggedge.run.inputs import (
    check_auto,
    check_classes,
    check_labels,
    check_recipes,
    check_writable,
    load_data,
    synthetic_split,
)
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.steps import DataCounts, StepContext
from vggedge.steps.inference_check import stale_baseline_note


def keras_predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return model.predict(images.astype(np.float32), batch_size=32, verbose=0)


def measure_keras_latency(model: keras.Model, image: np.ndarray, runs: int, warmup: int) -> Latency:
    """Batch-1 latency of the float32 Keras model through a compiled tf.function (no Python overhead).

    At least one untimed call even with ``--warmup 0``: the first call traces the graph (seconds), which
    is compilation, not inference (with --runs 1 it once made every recipe look 4,000x faster)."""
    forward = tf.function(lambda x: model(x, training=False))
    batch = tf.constant(image[None].astype(np.float32))
    return latency_summary(time_calls(lambda: forward(batch).numpy(), warmup=max(1, warmup), runs=runs))


def prepare(options: OptimizeOptions, recipes: list[Recipe]) -> Prepared:
    """Load model and data (validating both), check every recipe, then measure the float32 Keras baseline once.

    A worker of a cluster other than the chief only trains: it writes nothing and measures nothing."""
    chief = options.placement.is_chief
    if chief:
        check_writable(options.out)
    notes: list[str] = []
    if options.model == "sample":
        dataset = load_data(options, None)
        baseline = load_baseline("sample", None, None, dataset, progress=options.progress, cache=options.cache)
    else:
        baseline = load_baseline(
            options.model, options.weights, options.preprocess, progress=options.progress, offline=options.offline
        )
        dataset = load_data(options, baseline) if baseline.accuracy_measurable else None
        if options.data and not baseline.accuracy_measurable:
            notes.append("--data ignored: random weights make accuracy meaningless")
    if baseline.preprocess_note:
        notes.append(f"preprocessing: {baseline.preprocess_note}")
    if options.labels is not None:
        check_labels(read_labels_file(options.labels), baseline, dataset)
    if dataset is not None:
        check_classes(baseline, dataset)
        eval_split = dataset.eval
    else:
        eval_split = synthetic_split(int(baseline.model.input_shape[1]))
        notes.append(
            "accuracy not measured: "
            + ("random weights" if not baseline.accuracy_measurable else "no labelled data (--data)")
        )
    counts = DataCounts(
        train=len(dataset.train) if dataset else 0,
        calibration=len(dataset.calibration) if dataset else 0,
        synthetic=not baseline.accuracy_measurable,
    )
    if options.auto is not None:
        check_auto(baseline, counts, options.auto)
        runnable, skipped = [], []
    else:
        runnable, skipped = check_recipes(recipes, baseline, counts, options.skip_inapplicable)
    labels_match = dataset is not None
    device = best_device()
    if not chief:  # the chief measures the baseline and writes the reports
        empty = BaselineFigures(format="keras float32", device=device)
        return Prepared(baseline, dataset, eval_split, labels_match, counts, empty, np.zeros(0), notes, runnable, [])
    with tf.device("/GPU:0" if device.startswith("GPU") else "/CPU:0"):
        scores = keras_predict(baseline.model, eval_split.images)
        latency = measure_keras_latency(baseline.model, eval_split.images[0], options.runs, options.warmup)
    if baseline.translation is not None and dataset is not None:
        baseline = translation_on_evaluation(baseline, eval_split.images, scores, options.progress)
    accuracy = accuracy_figures(scores if labels_match else None, eval_split.labels)
    held = dataset.calibration if dataset is not None else None
    stale = stale_baseline_note(baseline.model, held.images, held.labels) if held is not None else None
    if stale:
        notes.append(stale)
        if options.progress:
            log_line(f"warning: {stale}")
    figures = BaselineFigures(
        format="keras float32",
        device=device,
        size_bytes=int(baseline.model.count_params()) * 4,
        flops=flops(baseline.model),
        **accuracy,
        latency_ms=latency,
    )
    return Prepared(baseline, dataset, eval_split, labels_match, counts, figures, scores, notes, runnable, skipped)


def translation_on_evaluation(baseline: Baseline, images: np.ndarray, scores: np.ndarray, progress: bool) -> Baseline:
    """A model translated from PyTorch or ONNX, checked against its source on the evaluation images too (at load it
    saw synthetic probe images only): the report's model section states both; a disagreement stops the run."""
    from vggedge.models.foreign import verify_on_images

    if progress:
        log_line(f"checking the translation against its source on the {len(images)} evaluation images")
    translation = verify_on_images(baseline.translation, baseline.preprocess, images, scores)
    return dataclasses.replace(baseline, translation=translation)


def step_context(prepared: Prepared, options: OptimizeOptions) -> StepContext:
    """The images steps learn from: the training split, or noise for a sizes-only (random weights) run; the images
    they check a fine-tune on: the calibration split, or ``prepared.check_images`` when a run set them."""
    size = int(prepared.baseline.model.input_shape[1])
    progress = options.progress and options.placement.is_chief
    if prepared.counts.synthetic:
        context = StepContext.synthetic_for(size, progress)
    elif prepared.dataset is None:  # no --data: only steps that learn nothing passed their checks
        context = StepContext(Split(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), []), None, progress)
    else:
        context = StepContext.from_dataset(prepared.dataset, prepared.labels_match, progress)
        if prepared.check_images is not None:
            context = context.checked_on(prepared.check_images, prepared.labels_match)
    return dataclasses.replace(context, placement=options.placement)


def require_training_files(context: StepContext, recipe: Recipe) -> None:
    """A UserError naming the recipe when training files vanished during its steps (nothing written for it)."""
    if isinstance(context.train, FileSplit):
        try:
            context.train.require_still_there()
        except UserError as error:
            raise UserError(f"recipe {recipe.name!r}: {error}") from None
