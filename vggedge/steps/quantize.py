"""The quantize step: the post-training modes leave the model to the converter (:mod:`vggedge.export.convert`),
``equalize = true`` runs cross-layer equalization first, and ``int8-qat`` fine-tunes with tfmot's quantizers
(:mod:`vggedge.steps.qat`)."""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.selectors import split_selectors
from vggedge.export.equalize import equalize
from vggedge.models.anatomy import Anatomy
from vggedge.recipe.schema import QuantizeStep
from vggedge.steps import qat
from vggedge.steps.context import DataCounts, StepContext, StepResult


def check(step: QuantizeStep, anatomy: Anatomy, data: DataCounts) -> Anatomy:
    """Calibrated modes need calibration images; quantization-aware training needs training images."""
    if step.quantization.trains:
        data.require_training_images("quantization-aware fine-tuning")
    if step.quantization.calibrated:
        data.require_calibration_images(f"{step.mode} conversion")
    if step.keep_float and step.keep_float != "auto":
        for part in split_selectors(step.keep_float):
            anatomy.select(part)  # a selector that picks nothing: refused before any work
    return anatomy


def apply(step: QuantizeStep, model: keras.Model, context: StepContext) -> StepResult:
    record = {**step.model_dump(mode="json")}
    if step.equalize:
        return equalized(model, record, context)
    if step.quantization.trains:
        return qat.fine_tune(step, model, context, record)
    return StepResult(model, record)


# Scores of the equalized model may differ from its source's by float32 rounding only; more means the
# rescaling changed the function (a layer between a pair that does not commute with it).
EQUALIZED_TOLERANCE = 1e-3


def equalized(model: keras.Model, record: dict, context: StepContext) -> StepResult:
    """Cross-layer equalization before int8 calibration, checked to keep the function on held-apart images."""
    balanced, equalization = equalize(model)
    images = context.held_apart.images[:16] if context.held_apart is not None and len(context.held_apart) else None
    if images is not None:
        source = model.predict(images, verbose=0)
        difference = float(np.abs(balanced.predict(images, verbose=0) - source).max())
        equalization["max_abs_score_change"] = round(difference, 7)
        if difference > EQUALIZED_TOLERANCE * max(1.0, float(np.abs(source).max())):
            raise RuntimeError(
                f"cross-layer equalization changed the model's scores by up to {difference:.3g}: "
                "set equalize = false in the quantize step"
            )
    return StepResult(balanced, {**record, "equalization": equalization})
