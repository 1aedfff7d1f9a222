"""``vggedge optimize``: baseline -> recipe steps -> TFLite -> verification -> benchmark -> report.

The baseline is measured once per invocation, so ``--recipe all`` compares every recipe against
the same baseline figures. A recipe that fails to export or to verify becomes a report with that
status, never a crash; bad input is a :class:`UserError` raised before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import traceback
from pathlib import Path

import numpy as np

from vggedge import defaults
from vggedge.atomic import write_bytes, write_text
from vggedge.cache import default_cache_dir
from vggedge.convert import convert
from vggedge.data import Dataset, FileSplit, Split, load_all, load_dataset, save_split
from vggedge.device.benchmark import TFLiteMeasurement, measure_tflite
from vggedge.device.environment import describe_environment
from vggedge.distribute import Placement, one_device
from vggedge.errors import UserError
from vggedge.fallback import Check, convert_with_fallback, fallback_note
from vggedge.flops import flops
from vggedge.keras_env import best_device, keras, tf
from vggedge.labels import read_labels_file, write_labels
from vggedge.layer_error import layer_errors
from vggedge.layer_error import summary_lines as layer_summary_lines
from vggedge.metadata import add_classifier_metadata
from vggedge.metrics import (
    accuracy_figures,
    agreement,
    latency_summary,
    max_abs_error,
    paired_change,
    time_calls,
    top1_classes,
)
from vggedge.models.loading import Baseline, load_baseline
from vggedge.progress import duration, log_line
from vggedge.recipe import Recipe
from vggedge.report import (
    STATUS_FAILED_EXPORT,
    STATUS_FAILED_VERIFICATION,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    AccuracyBudget,
    BaselineFigures,
    DatasetSection,
    Latency,
    RecipeSection,
    Report,
    Result,
    Verification,
)
from vggedge.search import SearchOptions
from vggedge.shared_steps import SharedSteps
from vggedge.steps import DataCounts, StepContext, apply_step, check_recipe
from vggedge.steps.inference_check import stale_baseline_note

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
    auto: SearchOptions | None = None  # `--recipe auto`: search a shape first (vggedge.search), then run it
    max_epochs: int | None = None  # --max-epochs: the recipes were cut to it (said in every report's notes)
    labels: Path | None = None  # --labels: class names for a model without data (one a line)
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


def check_writable(folder: Path) -> None:
    """Fail early (before minutes of work) if ``folder`` cannot be created or written; create nothing."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "a file is in the way" if not existing.is_dir() else "permission denied"
        raise UserError(
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
            from vggedge.sample import load_sample_dataset

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
    )


def check_classes(baseline: Baseline, dataset: Dataset) -> None:
    if baseline.classes != len(dataset.class_names):
        raise UserError(
            f"the data has {len(dataset.class_names)} classes ({', '.join(dataset.class_names[:5])}…) but the model "
            f"outputs {baseline.classes}: use data with one subfolder per model class"
        )
    if baseline.class_names and baseline.class_names != dataset.class_names:
        raise UserError(
            f"the data's class folders {dataset.class_names} do not match the model's classes {baseline.class_names}"
        )


def check_labels(names: list[str], baseline: Baseline, dataset: Dataset | None) -> None:
    """``--labels`` names the model's classes: as many as it outputs, and the data's own when there is data."""
    if len(names) != baseline.classes:
        raise UserError(f"--labels names {len(names)} classes but the model outputs {baseline.classes}")
    if dataset is not None and names != list(dataset.class_names):
        raise UserError(
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


def step_context(prepared: Prepared, options: OptimizeOptions) -> StepContext:
    """The images steps learn from: the training split, or noise for a sizes-only (random weights) run."""
    size = int(prepared.baseline.model.input_shape[1])
    progress = options.progress and options.placement.is_chief
    if prepared.counts.synthetic:
        context = StepContext.synthetic_for(size, progress)
    elif prepared.dataset is None:  # no --data: only steps that learn nothing passed their checks
        context = StepContext(Split(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), []), None, progress)
    else:
        context = StepContext.from_dataset(prepared.dataset, prepared.labels_match, progress)
    return dataclasses.replace(context, placement=options.placement)


def require_training_files(context: StepContext, recipe: Recipe) -> None:
    """A UserError naming the recipe when training files vanished during its steps (nothing written for it)."""
    if isinstance(context.train, FileSplit):
        try:
            context.train.require_still_there()
        except UserError as error:
            raise UserError(f"recipe {recipe.name!r}: {error}") from None


def apply_steps(
    recipe: Recipe, model: keras.Model, context: StepContext, seed: int, shared: SharedSteps | None = None
) -> tuple[keras.Model, list[dict]]:
    """Every step of ``recipe`` in order; step ``i`` is seeded with ``seed + i``. With ``shared``, the steps an
    earlier recipe of the run began with the same way are taken over from it (:mod:`vggedge.shared_steps`)."""
    records: list[dict] = []
    start = 0
    reused = shared.reuse(recipe) if shared is not None else None
    if reused is not None:
        model, records, start = reused.model, reused.records, reused.steps
    for index in range(start, len(recipe.steps)):
        # Each step gets its own seed (shuffling, new layers' init), so a recipe's figures do not
        # depend on which recipes ran before it in the same invocation.
        outcome = apply_step(recipe.steps[index], model, dataclasses.replace(context, seed=seed + index))
        model = outcome.model
        records.append(outcome.record)
        if shared is not None:
            shared.offer(recipe, index + 1, model, records)
    if shared is not None:
        shared.finished(recipe)
    return model, records


def class_balanced_order(labels: np.ndarray) -> np.ndarray:
    """Indices into ``labels`` that take every class in turn (each class's images in their split order): the first
    N calibrate from as many classes as N allows, not from the classes that happen to come first."""
    per_class = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    rounds = max((len(indices) for indices in per_class), default=0)
    return np.asarray([indices[r] for r in range(rounds) for indices in per_class if r < len(indices)], dtype=int)


def calibration_images(prepared: Prepared, count: int) -> np.ndarray:
    """``count`` images of the calibration split (checked non-empty up front), every class in turn, or the synthetic
    evaluation images of a sizes-only run."""
    if prepared.dataset is not None and len(prepared.dataset.calibration):
        calibration = prepared.dataset.calibration
        return calibration.images[class_balanced_order(calibration.labels)[:count]]
    return prepared.eval.images[:count]


def fallback_check(context: StepContext, budget: AccuracyBudget, options: OptimizeOptions) -> Check | None:
    """What keep_float = 'auto' checks each try on: the calibration split (held apart from the evaluation)."""
    held = context.held_apart
    if held is None or not len(held):
        return None
    return Check(held.images, context.held_apart_labels, budget.max_drop_pts, options.min_agreement)


def classes_without_calibration(dataset: Dataset, count: int) -> str | None:
    """A note when the calibration images used miss a class: int8's activation ranges then come from the other
    classes only (said, so a class that int8 gets wrong has its likely reason beside it)."""
    labels = dataset.calibration.labels[class_balanced_order(dataset.calibration.labels)[:count]]
    missing = [name for index, name in enumerate(dataset.class_names) if not np.any(labels == index)]
    if not missing:
        return None
    shown = ", ".join(repr(name) for name in missing[:5])
    shown += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"int8 calibrated on {count} images covering {len(dataset.class_names) - len(missing)} of "
        f"{len(dataset.class_names)} classes (none of {shown}): add images of those classes or raise "
        "--calibration-samples"
    )


def accuracy_budget(recipe: Recipe, options: OptimizeOptions) -> AccuracyBudget:
    """The budget this recipe's result is held to: --max-drop, else the recipe's own, else the default."""
    if options.max_drop is not None:
        return AccuracyBudget(options.max_drop, "--max-drop")
    if recipe.max_drop is not None:
        return AccuracyBudget(recipe.max_drop, "recipe")
    return AccuracyBudget(defaults.MAX_DROP_PTS, "default")


def check_auto(baseline: Baseline, counts: DataCounts, auto: SearchOptions) -> None:
    """Before any work: a conv block to thin, labelled data, and training images for both the search split
    and the fine-tunes."""
    from vggedge.search import check_searchable, search_split_size
    from vggedge.steps.context import MIN_TRAINING_IMAGES

    check_searchable(baseline.anatomy)
    if counts.synthetic or counts.train == 0:
        raise UserError("--recipe auto ranks shapes by accuracy: it needs a trained model and --data with images")
    carved = search_split_size(auto, counts.train)
    if auto.search_data is None and counts.train < carved + MIN_TRAINING_IMAGES:
        raise UserError(
            f"--recipe auto carves {carved} search images from the {counts.train} training images and "
            f"needs {MIN_TRAINING_IMAGES} more to fine-tune on: add images or lower --search-images"
        )


def run_recipe(
    recipe: Recipe,
    prepared: Prepared,
    options: OptimizeOptions,
    search: dict | None = None,
    shared: SharedSteps | None = None,
) -> Path:
    """Apply the recipe's steps (taking over those an earlier recipe of the run shares, ``shared``), convert,
    verify, benchmark, and write the run folder."""
    folder = options.out / recipe.name
    baseline = prepared.baseline
    notes = list(prepared.notes)
    if recipe.name in prepared.cut_short:
        notes.append(f"fine-tuning cut to at most {options.max_epochs} epochs per step (--max-epochs): a trial run")
    context = step_context(prepared, options)
    model, records, result, measured = baseline.model, [], Result(), None
    timing = {"steps_s": 0.0, "convert_s": None}
    try:
        started = time.perf_counter()
        model, records = apply_steps(recipe, model, context, options.seed, shared)
        timing["steps_s"] = round(time.perf_counter() - started, 2)
        taken = [i for i, record in enumerate(records, start=1) if record.get("shared_with")]
        if taken:
            notes.append(
                f"step{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} taken over from recipe "
                f"{records[taken[0] - 1]['shared_with']!r} of this run (the same steps with the same seeds: "
                "applied once)"
            )
        require_training_files(context, recipe)
        unreadable = getattr(context.train, "failed", set())
        if unreadable:  # said, never a silently shorter training set
            notes.append(f"{len(unreadable)} training images could not be decoded and were left out of fine-tuning")
        calibration = calibration_images(prepared, recipe.calibration_samples) if recipe.calibration_samples else None
        if calibration is not None and prepared.dataset is not None and prepared.labels_match:
            uncovered = classes_without_calibration(prepared.dataset, len(calibration))
            if uncovered:
                notes.append(uncovered)
        if calibration is not None and context.synthetic:
            notes.append(
                f"int8 calibrated on {len(calibration)} synthetic images (random weights: no data to learn from)"
            )
        started = time.perf_counter()
        options.out.mkdir(parents=True, exist_ok=True)  # the converter's scratch SavedModel goes beside the runs
        if recipe.keep_float:
            check = fallback_check(context, accuracy_budget(recipe, options), options)
            flatbuffer, fallback = convert_with_fallback(model, recipe.keep_float, calibration, check, options.out)
            records[-1]["keep_float"] = fallback
            if fallback["float_layers"]:
                notes.append(fallback_note(fallback, len(flatbuffer), recipe.keep_float))
        else:
            flatbuffer = convert(model, recipe.quantization, calibration, scratch=options.out)
        timing["convert_s"] = round(time.perf_counter() - started, 2)
        if options.progress:  # the conversion has no bar: a line says it happened and what it took
            log_line(
                f"{recipe.name}: converted to TFLite ({recipe.quantization.value}) in {duration(timing['convert_s'])}, "
                f"{len(flatbuffer) / 1e6:.2f} MB"
            )
    except Exception as error:  # a failed step or export is a row in the report (checks ran up front), not a crash
        require_training_files(context, recipe)  # unless the data vanished: that ends the run, in one line
        # Every figure stays null (not measured), never 0.
        result = Result(
            status=STATUS_FAILED_EXPORT, error=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        )
        notes.append(traceback.format_exc(limit=3).splitlines()[-1])
        flatbuffer = None
        (folder / "model.tflite").unlink(missing_ok=True)  # never leave an older run's model beside this report
    write_text(folder / "recipe.toml", recipe.to_toml())
    budget = accuracy_budget(recipe, options)
    names = class_names(prepared, options)
    write_labels(folder, names)
    if flatbuffer is not None:
        flatbuffer = with_metadata(flatbuffer, recipe, baseline, names, notes)
        model_path = folder / "model.tflite"
        write_bytes(model_path, flatbuffer)
        result, measured = verify_and_measure(model, model_path, prepared, options)
        result.flops = flops(model)
        if result.status == STATUS_FAILED_VERIFICATION:
            notes.append(f"verification failed: agreement with the Keras source below {options.min_agreement}")
        drop = top1_drop_pts(prepared.figures.top1, result.top1)
        if result.status == STATUS_OK and drop is not None and drop > budget.max_drop_pts:
            result.status = STATUS_OVER_BUDGET
            notes.append(
                f"over budget: top-1 fell {drop:.2f} points, more than the {budget.max_drop_pts} allowed "
                f"({budget.source})"
            )
        if recipe.quantization.integer_io:
            describe_layer_error(model, flatbuffer, prepared, result, notes, options)
    result.accuracy_budget = budget
    result.timing = timing
    write_baseline_predictions(folder, prepared)
    report = Report(
        recipe=RecipeSection(
            name=recipe.name,
            description=recipe.description,
            quantization=recipe.quantization.value,
            seed=options.seed,
            steps=records,
            training=options.placement.describe(),
        ),
        model=baseline.describe(),
        dataset=describe_dataset(prepared),
        environment=describe_environment(
            measured.runtime if measured else None,
            measured.threads if measured else None,
            prepared.figures.device if prepared.figures.device != "CPU" else None,
        ),
        baseline=prepared.figures,
        result=result,
        notes=notes,
        search=search,
    )
    return report.write(folder)


def with_metadata(flatbuffer: bytes, recipe: Recipe, baseline: Baseline, names: list[str], notes: list[str]) -> bytes:
    """The model with standard TFLite metadata (image input, class names inside it; ``vggedge.metadata``), or as
    it was, with a note saying why, when its input is not an RGB image."""
    try:
        return add_classifier_metadata(
            flatbuffer, f"{baseline.model.name} ({recipe.name})", recipe.description or recipe.name, names
        )
    except ValueError as error:
        notes.append(f"no TFLite metadata written: {error}")
        return flatbuffer


def describe_layer_error(
    model: keras.Model,
    flatbuffer: bytes,
    prepared: Prepared,
    result: Result,
    notes: list[str],
    options: OptimizeOptions,
) -> None:
    """Each conv/dense layer's int8 error in the result (worst first), and the worst three in the notes when the
    result is not ok: the layer to look at, by the name the user gave it."""
    started = time.perf_counter()
    try:
        rows = layer_errors(model, flatbuffer, prepared.eval.images)
    except Exception as error:  # the table explains a result; it never costs one
        notes.append(f"int8 error per layer not measured: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return
    result.layer_error = [row.to_dict() for row in rows]
    if result.status != STATUS_OK and rows:
        notes.append(
            "int8 error per layer, worst first: "
            + "; ".join(layer_summary_lines(rows))
            + '. To try: --keep-float auto (keep_float = "auto" in the quantize step) keeps the worst layers in '
            "float (and equalize = true, the default for int8, equalizes channel ranges first)"
        )
    if options.progress:
        log_line(f"int8 error per layer measured in {duration(time.perf_counter() - started)}")


def top1_drop_pts(baseline_top1: float | None, result_top1: float | None) -> float | None:
    """How many top-1 points the result lost against the baseline (negative: it gained); None if unmeasured."""
    if baseline_top1 is None or result_top1 is None:
        return None
    return round((baseline_top1 - result_top1) * 100, 2)


def describe_dataset(prepared: Prepared) -> DatasetSection:
    if prepared.dataset is not None:
        return prepared.dataset.describe()
    return DatasetSection(name="synthetic", eval_samples=len(prepared.eval))


def verify_and_measure(
    source: keras.Model, model_path: Path, prepared: Prepared, options: OptimizeOptions
) -> tuple[Result, TFLiteMeasurement]:
    """TFLite against its Keras source (verification) and against the baseline (agreement), plus figures."""
    images = prepared.eval.images
    labels = prepared.eval.labels if prepared.labels_match else None
    measured = measure_tflite(
        model_path, images, labels, options.threads, options.runs, options.warmup, options.progress
    )
    source_scores = keras_predict(source, images)
    gated = prepared.baseline.accuracy_measurable
    verify_agreement = agreement(measured.scores, source_scores)
    passed = verify_agreement is not None and verify_agreement >= options.min_agreement
    result = dataclasses.replace(
        measured.result,
        status=STATUS_OK if passed or not gated else STATUS_FAILED_VERIFICATION,
        agreement=agreement(measured.scores, prepared.scores) if prepared.labels_match else None,
        max_abs_error=round(max_abs_error(measured.scores, source_scores), 6),
        verification=Verification(len(images), verify_agreement, options.min_agreement, gated),
        top1_change=paired_change(prepared.scores, measured.scores, labels) if labels is not None else None,
    )
    return result, measured


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


def train_as_worker(prepared: Prepared, options: OptimizeOptions) -> None:
    """A cluster's other workers: every recipe's steps, in the chief's order, in lock-step with it.

    A step that fails on the chief fails here too (same model, same data), so both move on to the
    next recipe together; what the steps produce is the chief's to convert and write."""
    context = step_context(prepared, options)
    shared = SharedSteps(prepared.recipes)  # the chief's table: both take over the same steps
    for recipe in prepared.recipes:
        with contextlib.suppress(Exception):  # the chief reports a step's failure; a worker follows along
            apply_steps(recipe, prepared.baseline.model, context, options.seed, shared)


def optimize(recipes: list[Recipe], options: OptimizeOptions, on_skip=None) -> list[Path]:  # noqa: ANN001
    """Run ``recipes`` against one baseline measurement; ``on_skip(line)`` hears of recipes left out."""
    capped = [recipe.with_max_epochs(options.max_epochs) for recipe in recipes]
    cut_short = {recipe.name for recipe, cut in zip(recipes, capped, strict=True) if cut != recipe}
    prepared = dataclasses.replace(prepare(options, capped), cut_short=cut_short)
    if not options.placement.is_chief:
        train_as_worker(prepared, options)
        return []
    for line in prepared.skipped:
        if on_skip:
            on_skip(line)
    if options.auto is not None:
        reports = [run_auto(prepared, options)]
    else:
        shared = SharedSteps(prepared.recipes)
        reports = [run_recipe(recipe, prepared, options, shared=shared) for recipe in prepared.recipes]
    if options.model == "sample" and options.data is None:
        export_eval_images(prepared, options.out)
    return reports


def run_auto(prepared: Prepared, options: OptimizeOptions) -> Path:
    """``--recipe auto``: search the shape on a split carved from the training images, then run the found
    recipe like any other (from the baseline, long fine-tunes, the whole training split) and report both."""
    from vggedge.search import VALIDATION_STANDARD_ERRORS, Searcher, search_split_size

    auto = dataclasses.replace(
        options.auto,
        max_epochs=options.max_epochs,  # the GAP start's, the validations' and the found recipe's fine-tunes
        search_images=search_split_size(options.auto, prepared.counts.train),
    )
    search_split, tune = search_and_tune_splits(prepared, auto, options.progress)
    budget_per_image = 100.0 / max(1, len(prepared.eval))
    if options.progress and budget_per_image > auto.max_drop_pts / 2:
        log_line(
            f"auto: one of the {len(prepared.eval)} evaluation images is {budget_per_image:.2f} points, more than half "
            f"the {auto.max_drop_pts}-point budget: the reported top-1 cannot resolve it (more --eval-samples can)"
        )
    search_per_image = 100.0 / max(1, len(search_split))
    if options.progress and search_per_image > auto.max_drop_pts / 2:
        log_line(
            f"auto: one of the {len(search_split)} search images is {search_per_image:.2f} points, more than half the "
            "budget: candidates are ranked coarsely (more --search-images, or a larger --max-drop, ranks finer)"
        )
    started = time.perf_counter()

    def report_candidate(candidate, target: float) -> None:  # noqa: ANN001
        if not options.progress:
            return
        keep = " ".join(f"{1 - r:.3g}" for r in candidate.block_ratios)
        unit = "ms" if auto.goal == "latency" else "bytes"
        log_line(
            f"auto: {'' if candidate.stage == 'search' else candidate.stage + ' '}candidate {len(searcher.candidates)} "
            f"(blocks keep {keep}, head {candidate.head}, {candidate.quantization}): "
            f"{candidate.latency_ms:.2f} ms, {candidate.size_bytes / 1e6:.2f} MB, search top-1 "
            f"{candidate.search_top1:.1%} ({-candidate.drop_pts:+.2f} pts){validation_verdict(candidate)}; "
            f"target {target:.4g} {unit}; {duration(time.perf_counter() - started)} of {auto.minutes:g} min"
        )

    def validation_verdict(candidate) -> str:  # noqa: ANN001
        if candidate.passed is None:
            return ""
        verdict = "passes" if candidate.passed else "fails"
        return f", drop + {VALIDATION_STANDARD_ERRORS:g} s.e. {candidate.drop_bound_pts:.2f} pts: {verdict}"

    calibration = calibration_images(prepared, defaults.CALIBRATION_SAMPLES)
    context = step_context(prepared, options)
    searcher = Searcher(
        prepared.baseline.model, search_split, tune, calibration, prepared.labels_match, auto, context, report_candidate
    )
    try:
        found = searcher.run()
    except KeyboardInterrupt:
        keep_interrupted_trace(searcher, options)
        raise
    if options.progress:
        log_line(f"auto: searched {len(found.candidates)} candidates in {duration(found.seconds)} ({found.stopped})")
    (options.out / "auto" / INTERRUPTED_TRACE).unlink(missing_ok=True)  # an earlier run's, now out of date
    note = memorized_search_split(prepared, found.baseline_search_top1, auto)
    if note:
        if options.progress:
            log_line(f"auto: {note}")
        prepared = dataclasses.replace(prepared, notes=[*prepared.notes, note])
    if found.cut_short:  # --max-epochs, as for the fixed recipes (the note on the report)
        prepared = dataclasses.replace(prepared, cut_short=prepared.cut_short | {found.recipe.name})
    return run_recipe(found.recipe, prepared, options, search=found.describe(auto.goal, auto))


def search_and_tune_splits(prepared: Prepared, auto, progress: bool) -> tuple:  # noqa: ANN001 - search.SearchOptions
    """(search split, images for the refits and validations): ``--search-data`` whole and every training image, or
    the first ``--search-images`` training images carved off and the rest."""
    from vggedge.search import carve

    if auto.search_data is None:
        return carve(prepared.dataset.train, auto.search_images)
    size = int(prepared.baseline.model.input_shape[1])
    names, split, _ = load_all(auto.search_data, size, progress=progress)
    if names != prepared.dataset.class_names:
        raise UserError(
            f"--search-data {auto.search_data} has the classes {names}, and --data {prepared.dataset.class_names}: "
            "give the same class folders"
        )
    return split, prepared.dataset.train


# The baseline scoring this much more (in points) on a carved search split than on the evaluation images: it has
# trained on the search images, where drops are understated.
MEMORIZED_GAP_PTS = 1.0


def memorized_search_split(prepared: Prepared, baseline_search_top1: float, auto) -> str | None:  # noqa: ANN001
    """A note when the search split is carved from images the baseline looks trained on: its top-1 there above its
    top-1 on the evaluation images by more than :data:`MEMORIZED_GAP_PTS` and the budget. (The baseline's own two
    figures; no candidate is judged on the evaluation images.)"""
    evaluated = prepared.figures.top1
    if auto.search_data is not None or evaluated is None:
        return None
    gap = (baseline_search_top1 - evaluated) * 100
    if gap <= max(MEMORIZED_GAP_PTS, auto.max_drop_pts):
        return None
    return (
        f"the baseline scores {baseline_search_top1:.2%} on the search split carved from the training images and "
        f"{evaluated:.2%} on the evaluation images: it may have trained on the search images, where a thinner "
        "model's drop looks smaller than it is; --search-data with images it never trained on ranks without that bias"
    )


INTERRUPTED_TRACE = "search-incomplete.json"


def keep_interrupted_trace(searcher, options: OptimizeOptions) -> None:  # noqa: ANN001 - a search.Searcher
    """Ctrl-C during ``--recipe auto``'s search: no model and no report, but the candidates measured so far, in
    ``<out>/auto/search-incomplete.json`` (written atomically, marked ``complete: false``), so minutes of
    measurements are not lost. A run that finishes removes it."""
    if not searcher.candidates:
        return
    path = options.out / "auto" / INTERRUPTED_TRACE
    write_text(path, json.dumps(searcher.trace_so_far(), indent=1) + "\n")
    log_line(
        f"auto: interrupted after {len(searcher.candidates)} candidates; what they measured is in {path} "
        "(marked incomplete); no model or report was written"
    )
