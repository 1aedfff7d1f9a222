"""A recipe's other formats (``--formats``): each written from the same stepped Keras model as its TFLite file,
then verified against that model on the evaluation images and measured here like the TFLite one, with its own
status. A format that fails or misses says so in its row and never changes the TFLite result's."""

from __future__ import annotations

import numpy as np

from vggedge.core.formats import TFLITE, by_name, model_bytes, model_files
from vggedge.core.labels import LABELS_FILE
from vggedge.core.metrics import agreement
from vggedge.core.progress import log_line
from vggedge.core.report import (
    STATUS_FAILED_EXPORT,
    STATUS_FAILED_VERIFICATION,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    Artifact,
    ResultFigures,
)
from vggedge.device.benchmark import Measurement, measure_model
from vggedge.export import formats as writers
from vggedge.run.baseline import keras_predict
from vggedge.run.calibration import calibration_images
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.run.outputs import top1_drop_pts
from vggedge.run.remedies import Outcome


def tflite_artifact(
    result: ResultFigures, measured: Measurement | None, quantization: str, float_layers: tuple[str, ...] = ()
) -> Artifact:
    """The TFLite file's row, from the result every report already holds."""
    latency = result.latency_ms
    runtime = f"{measured.runtime.name} {measured.runtime.version}" if measured else None
    verification = result.verification.agreement if result.verification else None
    return Artifact(
        TFLITE.name, TFLITE.filename, quantization, result.status, runtime, result.size_bytes, result.top1,
        verification, result.agreement, latency.p50 if latency else None, result.error, list(float_layers),
    )  # fmt: skip


def other_artifacts(chosen: Outcome, prepared: Prepared, options: OptimizeOptions, names: list[str]) -> list[Artifact]:
    """Every format asked for besides TFLite, written into the recipe's folder and judged."""
    asked = [name for name in options.formats if name != TFLITE.name]
    if not asked:
        return []
    if chosen.model is None or chosen.result.status == STATUS_FAILED_EXPORT:
        why = "the recipe stopped before its conversion"
        return [Artifact(n, by_name(n).filename, "—", STATUS_FAILED_EXPORT, error=why) for n in asked]
    images = prepared.eval.images
    source_scores = keras_predict(chosen.model, images)
    return [one_artifact(name, chosen, prepared, options, names, source_scores) for name in asked]


def kept_float(records: list[dict]) -> tuple[str, ...]:
    """The layers the recipe's TFLite file kept in float (its keep-float fallback, or the keep-float remedy): every
    int8 format of the recipe keeps the same ones, so one decision, checked on the TFLite file, holds for all."""
    for record in reversed(records):
        fallback = record.get("keep_float")
        if isinstance(fallback, dict):
            return tuple(fallback.get("float_layers") or ())
    return ()


def one_artifact(
    name: str, chosen: Outcome, prepared: Prepared, options: OptimizeOptions, names: list[str], source: np.ndarray
) -> Artifact:
    model_format, recipe = by_name(name), chosen.recipe
    path = options.out / recipe.name / model_format.filename
    calibration = calibration_images(prepared, recipe.calibration_samples) if recipe.calibration_samples else None
    properties = {LABELS_FILE.split(".")[0]: "\n".join(names), "resize": options.resize}
    try:
        float_layers = kept_float(chosen.records)
        written = writers.write(name, chosen.model, path, recipe.quantization, calibration, properties, float_layers)
    except Exception as error:  # a layer the format cannot hold: said in the row, the others stand
        for file in model_files(path, model_format):
            file.unlink(missing_ok=True)
        said = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        return Artifact(name, model_format.filename, writers.precision(recipe.quantization), STATUS_FAILED_EXPORT,
                        error=said)  # fmt: skip
    labels = prepared.eval.labels if prepared.labels_match else None
    measured = measure_model(path, prepared.eval.images, labels, options.threads, options.runs, options.warmup,
                             options.progress)  # fmt: skip
    verified = agreement(measured.scores, source)
    top1 = measured.result.top1
    status = STATUS_OK
    if prepared.baseline.accuracy_measurable and (verified is None or verified < options.min_agreement):
        status = STATUS_FAILED_VERIFICATION
    budget = chosen.result.accuracy_budget.max_drop_pts if chosen.result.accuracy_budget else None
    drop = top1_drop_pts(prepared.figures.top1, top1)
    if status == STATUS_OK and budget is not None and drop is not None and drop > budget:
        status = STATUS_OVER_BUDGET
    latency = measured.result.latency_ms
    if options.progress:
        p50 = f"{latency.p50:.2f} ms" if latency else "not timed"
        said = "—" if verified is None else f"{verified:.1%}"
        log_line(
            f"{recipe.name}: {model_format.filename} ({written}) {status}, agreement with its source {said}, p50 {p50}"
        )
    return Artifact(
        name, model_format.filename, written, status, f"{measured.runtime.name} {measured.runtime.version}",
        model_bytes(path), top1, verified,
        agreement(measured.scores, prepared.scores) if prepared.labels_match else None,
        latency.p50 if latency else None, None, list(float_layers),
    )  # fmt: skip
