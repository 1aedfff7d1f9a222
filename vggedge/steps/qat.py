"""Quantization-aware fine-tuning for ``quantize mode = "int8-qat"`` (other modes need no Keras work).

Only Conv2D and Dense layers are annotated: the preprocessing Rescaling layer is not in tfmot's
default QAT registry, and the converter quantizes it from calibration data like any PTQ model.
BatchNormalization is folded and separate ReLU layers fused first (:func:`fold_for_quantization`).
"""

from __future__ import annotations

import numpy as np

from vggedge.equalize import equalize
from vggedge.keras_env import keras, tfmot
from vggedge.models.anatomy import Anatomy
from vggedge.models.normalization import fold_for_quantization
from vggedge.recipe import QuantizeStep
from vggedge.selectors import split_selectors
from vggedge.steps.context import (
    DataCounts,
    StepContext,
    StepResult,
    classifier_loss,
    clone_with,
    float_bytes,
    training_targets,
)
from vggedge.training import fit


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
    if not step.quantization.trains:
        return StepResult(model, record)
    quantize = tfmot().quantization.keras
    model = fold_for_quantization(model)  # VGG16-BN: tfmot cannot wrap a float BatchNormalization/ReLU between
    names = {layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))}
    targets, are_labels = training_targets(model, context, step.batch_size)
    # The quantizers' ranges are only set by training-mode passes (before one, weight ranges are
    # tfmot's initial +-6 and small weights all round to zero). Without data to learn from, one
    # pass at a zero learning rate sets the ranges and leaves the weights as they are.
    learning_rate = 0.0 if context.synthetic else context.learning_rate(step.learning_rate)
    epochs = 1 if context.synthetic else step.epochs
    with context.placement.strategy.scope():
        qat_model = quantize.quantize_apply(clone_with(model, quantize.quantize_annotate_layer, names))
        qat_model.compile(keras.optimizers.Adam(learning_rate), classifier_loss(model, are_labels))
    losses = fit(
        qat_model,
        context.train,
        targets,
        epochs,
        min(step.batch_size, len(context.train)),
        "Quantization-aware fine-tuning",
        context.progress,
        placement=context.placement,
    )
    record.update(
        fine_tuned=not context.synthetic,
        targets="labels" if are_labels else "distillation",
        loss_per_epoch=losses if not context.synthetic else [],
        params=int(model.count_params()),
        float32_bytes=float_bytes(model),
    )
    return StepResult(qat_model, record)


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
