"""One recipe, stage by stage: steps, convert, verify and measure, hold to the budget, write the run folder."""

from __future__ import annotations

import dataclasses
import shutil
import time
import traceback
from pathlib import Path

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core import defaults
from vggedge.core.atomic import write_bytes, write_text
from vggedge.core.formats import TFLITE
from vggedge.core.labels import write_labels
from vggedge.core.metrics import (
    agreement,
    max_abs_error,
    paired_change,
    top1_classes,
)
from vggedge.core.progress import duration, log_line
from vggedge.core.report import (
    STATUS_FAILED_EXPORT,
    STATUS_FAILED_VERIFICATION,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    AccuracyBudget,
    Artifact,
    RecipeSection,
    Report,
    ResultFigures,
    Verification,
)
from vggedge.core.run_folder import staged
from vggedge.device.benchmark import Measurement, measure_model
from vggedge.device.environment import describe_environment
from vggedge.export.convert import convert
from vggedge.export.fallback import convert_with_fallback, fallback_note
from vggedge.models.flops import flops
from vggedge.recipe.schema import Recipe
from vggedge.run import remedies
from vggedge.run.artifacts import kept_float, other_artifacts, tflite_artifact
from vggedge.run.baseline import keras_predict, require_training_files, step_context
from vggedge.run.calibration import (
    calibration_images,
    classes_without_calibration,
    fallback_check,
)
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.run.outputs import (
    class_names,
    collapse_note,
    describe_dataset,
    describe_layer_error,
    top1_drop_pts,
    with_metadata,
    write_baseline_predictions,
)
from vggedge.steps import StepContext, apply_step, apply_steps
from vggedge.steps.shared import SharedSteps


def accuracy_budget(recipe: Recipe, options: OptimizeOptions) -> AccuracyBudget:
    """The budget this recipe's result is held to: --max-drop, else the recipe's own, else the default."""
    if options.max_drop is not None:
        return AccuracyBudget(options.max_drop, "--max-drop")
    if recipe.max_drop is not None:
        return AccuracyBudget(recipe.max_drop, "recipe")
    return AccuracyBudget(defaults.MAX_DROP_PTS, "default")


@dataclasses.dataclass
class Built:
    """A recipe's model after its steps and its conversion; ``flatbuffer`` is None when a step or the export
    failed (``error`` says how), and ``records`` then holds the steps that ran."""

    model: keras.Model
    records: list[dict]
    flatbuffer: bytes | None
    timing: dict
    error: str | None = None


def run_recipe(
    recipe: Recipe,
    prepared: Prepared,
    options: OptimizeOptions,
    search: dict | None = None,
    shared: SharedSteps | None = None,
) -> Path:
    """One recipe, stage by stage: its steps and conversion (taking over the steps an earlier recipe of the run
    shares, ``shared``), verification and measurement against the budget; when it misses, the remedies that can
    help (:mod:`vggedge.run.remedies`); then the run folder's recipe, labels and report. A failed step or export
    is a report with that status, never a crash. The folder is written under a staging name and published whole
    (:mod:`vggedge.core.run_folder`): ``<out>/<recipe>`` is always a complete run, the previous one or this one."""
    with staged(options.out, recipe.name) as staging:
        run_staged(recipe, prepared, dataclasses.replace(options, out=staging.root), search, shared)
        return staging.publish()


def run_staged(
    recipe: Recipe, prepared: Prepared, options: OptimizeOptions, search: dict | None, shared: SharedSteps | None
) -> Path:
    """:func:`run_recipe`'s work, in the staging root ``options.out``."""
    first = run_once(recipe, prepared, options, options.out, shared)
    chosen, tries = first, None
    if wants_remedies(first, prepared, options, search):
        chosen, tries = remedies.try_remedies(
            first,
            prepared.figures.top1,
            options.remedy_minutes,
            lambda outcome, variant, name: convert_again(outcome, variant, name, prepared, options),
            lambda variant, name: run_once(
                variant, prepared, options, remedies.scratch_folder(options.out, recipe, name)
            ),
            options.progress,
        )
        remedies.adopt(chosen, first)
        shutil.rmtree(options.out / ".remedies" / recipe.name, ignore_errors=True)
        budget = first.result.accuracy_budget.max_drop_pts if first.result.accuracy_budget else None
        chosen_name = next((t["remedy"] for t in tries if t["status"] == STATUS_OK), None)
        chosen.notes.append(remedies.tried_note(tries, chosen_name, recipe, budget))
    folder, names = options.out / recipe.name, class_names(prepared, options)
    write_text(folder / "recipe.toml", chosen.recipe.model_copy(update={"resize": options.resize}).to_toml())
    write_labels(folder, names)
    write_baseline_predictions(folder, prepared)
    float_layers = kept_float(chosen.records)
    files = [tflite_artifact(chosen.result, chosen.measured, chosen.recipe.quantization.value, float_layers)]
    files += other_artifacts(chosen, prepared, options, names)
    return write_report(
        chosen.recipe, chosen.records, chosen.result, chosen.measured, prepared, options, chosen.notes, search, tries,
        files,
    )  # fmt: skip


def wants_remedies(first: remedies.Outcome, prepared: Prepared, options: OptimizeOptions, search: dict | None) -> bool:
    """Remedies run for a result that missed, on real data with labels, unless turned off or the recipe is
    ``auto``'s (its search already chose the shape by the budget)."""
    return (
        options.remedies
        and search is None
        and first.result.status != STATUS_OK
        and prepared.labels_match
        and not prepared.counts.synthetic
        and prepared.dataset is not None
    )


def run_once(
    recipe: Recipe, prepared: Prepared, options: OptimizeOptions, out: Path, shared: SharedSteps | None = None
) -> remedies.Outcome:
    """The recipe built, converted and judged, its model written under ``out`` (the run's folder, or a remedy's)."""
    started = time.perf_counter()
    run_options = dataclasses.replace(options, out=out)
    notes = list(prepared.notes)
    if recipe.name in prepared.cut_short:
        notes.append(f"fine-tuning cut to at most {options.max_epochs} epochs per step (--max-epochs): a trial run")
    built = build(recipe, prepared, run_options, shared, notes)
    result, measured = judge(built, recipe, prepared, run_options, class_names(prepared, options), notes)
    seconds = time.perf_counter() - started
    return remedies.Outcome(recipe, built.records, result, measured, notes, out / recipe.name, seconds, built.model)


def convert_again(
    first: remedies.Outcome, variant: Recipe, name: str, prepared: Prepared, options: OptimizeOptions
) -> remedies.Outcome:
    """A remedy of the conversion alone: ``variant``'s quantize step applied to the recipe's stepped model (the
    keep-float remedy's is the same step with its fallback set; short-qat's fine-tunes), then converted."""
    started = time.perf_counter()
    out = remedies.scratch_folder(options.out, variant, name)
    run_options = dataclasses.replace(options, out=out)
    notes = list(first.notes[: len(prepared.notes)])
    timing = {"steps_s": (first.result.timing or {}).get("steps_s"), "convert_s": None}
    built = Built(first.model, remedies.copied_records(first), None, timing)
    context = step_context(prepared, options)
    try:
        if variant.steps[-1] != first.recipe.steps[-1] and variant.quantization.trains:
            seed = options.seed + len(variant.steps) - 1
            outcome = apply_step(variant.steps[-1], first.model, dataclasses.replace(context, seed=seed))
            built.model, built.records[-1] = outcome.model, outcome.record
        calibration = calibration_for(variant, prepared, context, notes)
        built.flatbuffer = export(built, variant, calibration, context, run_options, notes)
    except Exception as error:  # said in the remedy's record, like any failed export
        built.error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    result, measured = judge(built, variant, prepared, run_options, class_names(prepared, options), notes)
    seconds = time.perf_counter() - started
    return remedies.Outcome(variant, built.records, result, measured, notes, out / variant.name, seconds, first.model)


def build(
    recipe: Recipe, prepared: Prepared, options: OptimizeOptions, shared: SharedSteps | None, notes: list[str]
) -> Built:
    """The steps, then the conversion; a failure in either is caught here and said (the data vanishing ends the
    run instead, in one line)."""
    context = step_context(prepared, options)
    built = Built(prepared.baseline.model, [], None, {"steps_s": 0.0, "convert_s": None})
    try:
        started = time.perf_counter()
        built.model, built.records = apply_steps(recipe, built.model, context, options.seed, shared)
        built.timing["steps_s"] = round(time.perf_counter() - started, 2)
        notes += step_notes(built.records, context, recipe)
        calibration = calibration_for(recipe, prepared, context, notes)
        built.flatbuffer = export(built, recipe, calibration, context, options, notes)
    except Exception as error:  # a failed step or export is a row in the report (checks ran up front), not a crash
        require_training_files(context, recipe)  # unless the data vanished: that ends the run, in one line
        built.flatbuffer = None
        built.records = getattr(error, "records", built.records)  # a stopped step's record, with its reason
        built.error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        notes.append(traceback.format_exc(limit=3).splitlines()[-1])
        # never beside this report: an older run's
        (options.out / recipe.name / TFLITE.filename).unlink(missing_ok=True)
    return built


def step_notes(records: list[dict], context: StepContext, recipe: Recipe) -> list[str]:
    """What the steps' records say a reader should know: steps taken over, training images left out."""
    notes = []
    taken = [i for i, record in enumerate(records, start=1) if record.get("shared_with")]
    if taken:
        notes.append(
            f"step{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} taken over from recipe "
            f"{records[taken[0] - 1]['shared_with']!r} of this run (the same steps with the same seeds: applied once)"
        )
    require_training_files(context, recipe)
    unreadable = getattr(context.train, "failed", set())
    if unreadable:  # said, never a silently shorter training set
        notes.append(f"{len(unreadable)} training images could not be decoded and were left out of fine-tuning")
    return notes


def calibration_for(recipe: Recipe, prepared: Prepared, context: StepContext, notes: list[str]) -> np.ndarray | None:
    """The recipe's calibration images (None when it needs none), with a note when they miss a class or are noise."""
    if not recipe.calibration_samples:
        return None
    calibration = calibration_images(prepared, recipe.calibration_samples)
    if prepared.dataset is not None and prepared.labels_match:
        uncovered = classes_without_calibration(prepared.dataset, len(calibration))
        if uncovered:
            notes.append(uncovered)
    if context.synthetic:
        notes.append(f"int8 calibrated on {len(calibration)} synthetic images (random weights: no data to learn from)")
    return calibration


def export(
    built: Built,
    recipe: Recipe,
    calibration: np.ndarray | None,
    context: StepContext,
    options: OptimizeOptions,
    notes: list[str],
) -> bytes:
    """The stepped model as TFLite in the recipe's mode, with the float fallback when the recipe asks for it."""
    started = time.perf_counter()
    options.out.mkdir(parents=True, exist_ok=True)  # the converter's scratch SavedModel goes beside the runs
    if recipe.keep_float:
        check = fallback_check(context, accuracy_budget(recipe, options), options)
        flatbuffer, fallback = convert_with_fallback(built.model, recipe.keep_float, calibration, check, options.out)
        built.records[-1]["keep_float"] = fallback
        if fallback["float_layers"]:
            notes.append(fallback_note(fallback, len(flatbuffer), recipe.keep_float))
    else:
        flatbuffer = convert(built.model, recipe.quantization, calibration, scratch=options.out)
    built.timing["convert_s"] = round(time.perf_counter() - started, 2)
    if options.progress:  # the conversion has no bar: a line says it happened and what it took
        log_line(
            f"{recipe.name}: converted to TFLite ({recipe.quantization.value}) in "
            f"{duration(built.timing['convert_s'])}, {len(flatbuffer) / 1e6:.2f} MB"
        )
    return flatbuffer


def judge(
    built: Built, recipe: Recipe, prepared: Prepared, options: OptimizeOptions, names: list[str], notes: list[str]
) -> tuple[ResultFigures, Measurement | None]:
    """The model written (metadata inside), verified against its Keras source, measured, held to the budget; its
    int8 error per layer for integer results. Every figure of a failed export stays null, never 0."""
    budget = accuracy_budget(recipe, options)
    if built.flatbuffer is None:
        result, measured = ResultFigures(status=STATUS_FAILED_EXPORT, error=built.error), None
    else:
        flatbuffer = with_metadata(built.flatbuffer, recipe, prepared.baseline, names, notes, options.resize)
        model_path = options.out / recipe.name / TFLITE.filename
        write_bytes(model_path, flatbuffer)
        result, measured, source_scores = verify_and_measure(built.model, model_path, prepared, options)
        result.flops = flops(built.model)
        if result.status == STATUS_FAILED_VERIFICATION:
            notes.append(f"verification failed: agreement with the Keras source below {options.min_agreement}")
        collapse = collapse_note(source_scores, prepared.scores)
        if collapse and result.status != STATUS_OK:
            notes.append(collapse)
        drop = top1_drop_pts(prepared.figures.top1, result.top1)
        if result.status == STATUS_OK and drop is not None and drop > budget.max_drop_pts:
            result.status = STATUS_OVER_BUDGET
            notes.append(
                f"over budget: top-1 fell {drop:.2f} points, more than the {budget.max_drop_pts} allowed "
                f"({budget.source})"
            )
        if recipe.quantization.integer_io:
            describe_layer_error(built.model, flatbuffer, prepared, result, notes, options, recipe.keep_float)
    result.accuracy_budget = budget
    result.timing = built.timing
    return result, measured


def write_report(
    recipe: Recipe,
    records: list[dict],
    result: ResultFigures,
    measured: Measurement | None,
    prepared: Prepared,
    options: OptimizeOptions,
    notes: list[str],
    search: dict | None,
    tries: list[dict] | None = None,
    artifacts: list[Artifact] | None = None,
) -> Path:
    """``report.json`` and ``report.md`` in the recipe's run folder; returns the JSON's path."""
    report = Report(
        recipe=RecipeSection(
            name=recipe.name,
            description=recipe.description,
            quantization=recipe.quantization.value,
            seed=options.seed,
            steps=records,
            training=options.placement.describe(),
        ),
        model=prepared.baseline.describe(),
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
        remedies=tries,
        artifacts=artifacts or [],
    )
    return report.write(options.out / recipe.name)


def verify_and_measure(
    source: keras.Model, model_path: Path, prepared: Prepared, options: OptimizeOptions
) -> tuple[ResultFigures, Measurement, np.ndarray]:
    """TFLite against its Keras source (verification) and against the baseline (agreement), plus figures; and the
    Keras source's own scores (the collapse check reads them)."""
    images = prepared.eval.images
    labels = prepared.eval.labels if prepared.labels_match else None
    measured = measure_model(
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
        source_top1=float(np.mean(top1_classes(source_scores) == labels)) if labels is not None else None,
    )
    return result, measured, source_scores
