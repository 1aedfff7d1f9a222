"""Quantization-aware fine-tuning, for ``quantize mode = "int8-qat"`` (:mod:`vggedge.steps.quantize` calls it).

Only Conv2D and Dense layers are annotated: the preprocessing Rescaling layer is not in tfmot's
default QAT registry, and the converter quantizes it from calibration data like any PTQ model.
BatchNormalization is folded and separate ReLU layers fused first (:func:`fold_for_quantization`).
"""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras, tfmot
from vggedge.backend.training import fit
from vggedge.core.metrics import top1_classes
from vggedge.export.layer_error import output_before_activation
from vggedge.models.anatomy import chain_layers
from vggedge.models.normalization import fold_for_quantization
from vggedge.recipe.schema import QuantizeStep
from vggedge.steps.context import (
    StepContext,
    StepResult,
    classifier_loss,
    clone_with,
    float_bytes,
    training_targets,
)
from vggedge.steps.inference_check import CHECK_IMAGES


def fine_tune(step: QuantizeStep, model: keras.Model, context: StepContext, record: dict) -> StepResult:
    """The model wrapped in tfmot's quantizers and fine-tuned with them (``record`` gets the curve and checks)."""
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
    held_apart = None if context.synthetic or context.held_apart is None else context.held_apart.images
    if held_apart is not None and len(held_apart):
        record["activation_ranges"] = initialize_activation_ranges(qat_model, model, held_apart)
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
    if held_apart is not None and len(held_apart):
        record["agreement_with_input"] = check_qat_model(model, qat_model, held_apart, losses)
    return StepResult(qat_model, record)


TFMOT_INITIAL_RANGE = 6.0  # tfmot's moving-average activation quantizers start at [-6, 6]


def initialize_activation_ranges(qat_model: keras.Model, model: keras.Model, images: np.ndarray) -> dict:
    """Each wrapped layer's activation quantizer set to the range its float layer's output (or, where tfmot
    quantizes before the activation, its pre-activation) takes on ``images``, before the fine-tune.

    Why: tfmot starts every activation range at [-6, 6] and moves it by an exponential average with decay
    0.999, so a fine-tune of a few hundred steps leaves it near there. A model whose activations reach past 6
    (unnormalized features, a large-logit output) then trains and exports with them clipped: on the
    sequential_autonamed form with its first conv's outputs x100 (the function kept), int8-qat ended over budget
    while plain int8 kept the baseline. Calibrated like post-training int8 instead, the fine-tune starts from the
    true ranges."""
    images = images[:CHECK_IMAGES].astype(np.float32)
    # float layer name -> (pre-activation low, high, output low, high)
    ranges: dict[str, tuple[float, float, float, float]] = {}
    x = images
    for layer in chain_layers(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            pre = output_before_activation(layer, x)
            x = layer.activation(pre)
            ranges[layer.name] = (float(np.min(pre)), float(np.max(pre)), float(np.min(x)), float(np.max(x)))
        else:
            x = layer(x, training=False)
    widest, set_count = 0.0, 0
    for wrapper in qat_model.layers:
        inner = getattr(wrapper, "layer", None)
        if inner is None or inner.name not in ranges:
            continue
        pre_low, pre_high, post_low, post_high = ranges[inner.name]
        for variable in wrapper.weights:
            name = variable.name.split("/")[-1].split(":")[0]
            value = {
                "pre_activation_min": min(pre_low, 0.0),
                "pre_activation_max": max(pre_high, 0.0),
                "post_activation_min": min(post_low, 0.0),
                "post_activation_max": max(post_high, 0.0),
            }.get(name)
            if value is not None:
                variable.assign(value)
                widest = max(widest, abs(value))
                set_count += name.endswith("_max")  # one quantizer: its min and its max
    return {"images": len(images), "quantizers_set": set_count, "widest": round(widest, 3)}


# A fine-tune that only adds int8 rounding to a model keeps its answers: measured 100% agreement with the float
# input on 64 held-apart images, on the nested frozen form with Rescaling(1/127.5, -1) and on the sequential form
# with x100 activations (ranges set). A collapsed model (the loss ln 2) answers one class: about chance.
MIN_QAT_AGREEMENT = 0.8


class QATCollapse(RuntimeError):
    """Quantization-aware fine-tuning left a model that no longer answers as the model it started from."""


def check_qat_model(before: keras.Model, after: keras.Model, images: np.ndarray, losses: list[float]) -> float:
    """How often the QAT model (inference mode, its fake quantization on) gives the top-1 of the float model it
    started from, on held-apart images; raises :class:`QATCollapse` with the reason when it is far apart."""
    images = images[:CHECK_IMAGES].astype(np.float32)
    agreement = float(
        np.mean(top1_classes(before.predict(images, verbose=0)) == top1_classes(after.predict(images, verbose=0)))
    )
    if agreement < MIN_QAT_AGREEMENT:
        loss = f", its last epoch's loss {losses[-1]:.3f}" if losses else ""
        raise QATCollapse(
            f"quantization-aware fine-tuning broke the model: it gives the float model's top-1 on {agreement:.0%} of "
            f'{len(images)} held-apart images{loss}; use mode = "int8" (post-training) for this model'
        )
    return round(agreement, 4)
