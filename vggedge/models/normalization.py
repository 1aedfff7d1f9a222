"""BatchNormalization (VGG16-BN and its kin): kept through the steps and re-estimated, folded for QAT.

VGG16-BN (``Conv2D(use_bias=False) -> BatchNormalization -> ReLU`` in every block, often a normalized
dense head too) is the most common VGG variant. Steps that change weights break its normalization: filter
pruning removes input channels of the next convolution, so that layer's outputs no longer have the mean and
variance its BatchNormalization stored, and a short fine-tune moves the moving averages only a little
(momentum 0.99). The model is right in training mode and wrong in inference mode (VGG16-BN before this
module: ``fast`` at chance, ``edge`` 33 points down).

Two ways out, measured on the BatchNormalization form (tests/forms.py, 1/4 width, seed 0, fine-tunes cut
to 2 epochs, top-1 on 300 images, baseline 93.33%):

- ``fast``: folded 21.33% (failed_verification); kept and re-estimated 88.00%
- ``edge``: folded 94.00%; kept and re-estimated 97.33%
- ``prune``: folded 98.67%; kept and re-estimated 99.33%

Folding is exact in inference mode, but the folded network fine-tunes like a VGG without normalization:
after half its filters go, two epochs do not bring it back. So every normalization is **kept**: filter
pruning cuts its channels with the filters before it (:func:`vggedge.steps.filters.thin_model`), and after
every step that changes the weights :func:`reestimate_statistics` sets its statistics from training images
(:func:`vggedge.steps.apply_step`). The TFLite converter folds each one into the layer before it at
conversion, so the exported model has no normalization op either way. Quantization-aware training is the
exception: tfmot wraps convolutions and dense layers, and a float BatchNormalization or ReLU between two
wrapped layers leaves a DEQUANTIZE the converter cannot quantize, so the ``int8-qat`` step trains the
:func:`fold_for_quantization` copy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.keras_env import keras

FOLDS_INTO = (keras.layers.Conv2D, keras.layers.Dense)
REESTIMATE_IMAGES = 512
HANDLING = (
    "kept; channels cut with the filters before it, statistics re-estimated after every step that changes weights"
)


@dataclasses.dataclass(frozen=True)
class NormalizationFate:
    """What loading did with one BatchNormalization layer."""

    layer: str
    folded_into: str | None  # the conv/dense layer that absorbed it; None when kept
    why_kept: str | None = None

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def _is_linear(layer: keras.layers.Layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is None or getattr(activation, "__name__", "") == "linear"


def _last_axis(layer: keras.layers.BatchNormalization) -> bool:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input_shape)
    return [a % rank for a in axis] == [rank - 1]


def folded_weights(
    kernel: np.ndarray, bias: np.ndarray | None, norm: keras.layers.BatchNormalization
) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a layer whose output ``norm`` normalized in inference mode."""
    params = dict(zip((w.name.split("/")[-1].split(":")[0] for w in norm.weights), norm.get_weights(), strict=True))
    channels = kernel.shape[-1]
    gamma = params.get("gamma", np.ones(channels, np.float32))
    beta = params.get("beta", np.zeros(channels, np.float32))
    scale = gamma / np.sqrt(params["moving_variance"] + norm.epsilon)
    bias = np.zeros(channels, np.float32) if bias is None else bias
    return (kernel * scale).astype(np.float32), ((bias - params["moving_mean"]) * scale + beta).astype(np.float32)


def _why_not_foldable(before: keras.layers.Layer | None, norm: keras.layers.BatchNormalization) -> str | None:
    if type(before) not in FOLDS_INTO:  # exactly: a subclass (depthwise, transposed) folds differently
        kind = type(before).__name__ if before is not None else "the input"
        return f"follows {kind}, not a convolution or dense layer"
    if not _is_linear(before):
        return f"follows {before.name!r}'s {before.activation.__name__} activation (folding is exact only before it)"
    if not _last_axis(norm):
        return f"normalizes axis {norm.axis}, not the channels"
    return None


def _fuses_relu(layer: keras.layers.Layer) -> bool:
    """A plain ReLU (no cap, no slope, no threshold) that a conv/dense layer can take as its activation."""
    if isinstance(layer, keras.layers.ReLU):
        return layer.max_value is None and not float(layer.negative_slope) and not float(layer.threshold)
    return isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "relu"


def fold_batch_norm(model: keras.Model, fuse_relu: bool = False) -> tuple[keras.Model, list[NormalizationFate]]:
    """A copy of the chain ``model`` with every foldable BatchNormalization folded into the layer before it
    (weights, names and frozen flags carried over), and what happened to each one; with ``fuse_relu``, a
    ReLU layer right after a linear conv/dense layer (once its normalization is folded) becomes that layer's
    activation. The same function in inference mode. A model with nothing to change is returned as is."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    fates: list[NormalizationFate] = []
    folding: dict[str, keras.layers.BatchNormalization] = {}  # conv/dense name -> the normalization it absorbs
    for before, layer in zip([None, *layers[:-1]], layers, strict=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            why = _why_not_foldable(before, layer)
            if why is None:
                folding[before.name] = layer
            fates.append(NormalizationFate(layer.name, None if why else before.name, why))
    absorbed = {norm.name for norm in folding.values()}
    chain = [layer for layer in layers if layer.name not in absorbed]
    fusing = {
        before.name
        for before, layer in zip(chain[:-1], chain[1:], strict=True)
        if fuse_relu and type(before) in FOLDS_INTO and _is_linear(before) and _fuses_relu(layer)
    }
    fused = {layer.name for before, layer in zip(chain[:-1], chain[1:], strict=True) if before.name in fusing}
    if not folding and not fusing:
        return model, fates
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x = inputs
    for layer in chain:
        if layer.name in fused:
            continue
        config = layer.get_config()
        weights = layer.get_weights()
        if layer.name in folding:
            bias = weights[1] if layer.use_bias else None
            weights = list(folded_weights(weights[0], bias, folding[layer.name]))
            config["use_bias"] = True
        if layer.name in fusing:
            config["activation"] = "relu"
        copy = layer.__class__.from_config(config)
        x = copy(x)
        if weights:
            copy.set_weights(weights)
        copy.trainable = layer.trainable
    return keras.Model(inputs, x, name=model.name), fates


def fold_for_quantization(model: keras.Model) -> keras.Model:
    """``model`` as tfmot's QAT can wrap it: normalizations folded, ReLU layers fused into the layer before."""
    return fold_batch_norm(model, fuse_relu=True)[0]


def describe_normalization(model: keras.Model) -> list[dict]:
    """For the report and ``inspect``: each BatchNormalization, the layer it follows, what vggedge does with it."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return [
        {"layer": layer.name, "follows": before.name if before is not None else None, "handling": HANDLING}
        for before, layer in zip([None, *layers[:-1]], layers, strict=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def summary(normalization: list[dict]) -> str | None:
    """One line for ``inspect``, e.g. '14 BatchNormalization (after conv2d, …, dense): kept; …'."""
    if not normalization:
        return None
    follows = [n["follows"] or "the input" for n in normalization]
    shown = ", ".join(follows[:2]) + (f", … {follows[-1]}" if len(follows) > 2 else "")
    return (
        f"{len(normalization)} BatchNormalization (after {shown}): {HANDLING} (from {REESTIMATE_IMAGES} training "
        "images); TFLite folds them into the layer before at conversion"
    )


def normalization_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def reestimate_statistics(model: keras.Model, images, count: int = REESTIMATE_IMAGES, batch_size: int = 32) -> int:  # noqa: ANN001
    """Set every BatchNormalization's moving mean and variance to the average over ``count`` of ``images``
    (a Split or FileSplit) of the batch statistics it sees, in place; returns the images used.

    Adaptive BN (EagleEye, ECCV 2020): after a step changes the weights before a normalization (pruned
    input channels, a fine-tune), the stored statistics describe the old layer. A fine-tune of a few
    hundred steps at momentum 0.99 moves them only part of the way (measured: a model at 100% with batch
    statistics scored 67% with the stored ones after 48 steps). One pass in training mode without gradients,
    with the momentum set so that batch k weighs 1/(k+1), gives the plain average instead. Dropout is
    switched off for the pass and frozen normalization layers take part (Keras 2 runs a frozen one in
    inference mode otherwise)."""
    from vggedge.backend.keras_env import tf
    from vggedge.backend.training import image_dataset

    norms = normalization_layers(model)
    if not norms or not len(images):
        return 0
    subset = images.first(count) if len(images) > count else images
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    saved = [(layer, layer.momentum, layer.trainable) for layer in norms]
    rates = [(layer, layer.rate) for layer in dropouts]
    try:
        for layer in norms:
            layer.trainable = True
        for layer in dropouts:
            layer.rate = 0.0
        for k, batch in enumerate(image_dataset(subset, None, batch_size, shuffle=False)):
            for layer in norms:
                layer.momentum = k / (k + 1)
            model(tf.cast(batch, tf.float32), training=True)
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum, layer.trainable = momentum, trainable
        for layer, rate in rates:
            layer.rate = rate
    return len(subset)
