"""One recipe, stage by stage: steps, convert, verify and measure, hold to the budget, write the run folder."""

from __future__ import annotations

import dataclasses
import time
import traceback
from pathlib import Path

from vggedge.backend.keras_env import keras
from vggedge.core import defaults
from vggedge.core.atomic import write_bytes, write_text
from vggedge.core.labels import write_labels
from vggedge.core.metrics import (
    agreement,
    max_abs_error,
    paired_change,
)
from vggedge.core.progress import duration, log_line
from vggedge.core.report import (
    STATUS_FAILED_EXPORT,
    STATUS_FAILED_VERIFICATION,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    AccuracyBudget,
    RecipeSection,
    Report,
    Result,
    Verification,
)
from vggedge.device.benchmark import TFLiteMeasurement, measure_tflite
from vggedge.device.environment import describe_environment
from vggedge.export.convert import convert
from vggedge.export.fallback import convert_with_fallback, fallback_note
from vggedge.models.flops import flops
from vggedge.recipe.schema import Recipe
from vggedge.run.baseline import keras_predict, require_training_files, step_context
from vggedge.run.calibration import (
    calibration_images,
    classes_without_calibration,
    fallback_check,
)
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.run.outputs import (
    class_names,
    describe_dataset,
    describe_layer_error,
    top1_drop_pts,
    with_metadata,
    write_baseline_predictions,
)
from vggedge.steps import apply_steps
from vggedge.steps.shared import SharedSteps


def accuracy_budget(recipe: Recipe, options: OptimizeOptions) -> AccuracyBudget:
    """The budget this recipe's result is held to: --max-drop, else the recipe's own, else the default."""
    if options.max_drop is not None:
        return AccuracyBudget(options.max_drop, "--max-drop")
    if recipe.max_drop is not None:
        return AccuracyBudget(recipe.max_drop, "recipe")
    return AccuracyBudget(defaults.MAX_DROP_PTS, "default")


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
