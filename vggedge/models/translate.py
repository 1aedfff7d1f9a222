"""Translate a Keras 3 model into an equivalent Keras 2 (tf_keras) model, weights included.

tensorflow-model-optimization only understands Keras 2, and vggedge works in Keras 2 throughout
(see :mod:`vggedge.backend.keras_env`). Users' ``.keras`` files are Keras 3, so they are rebuilt layer by
layer. VGG-style classifiers are chains (nested models such as a frozen VGG16 base inside a
Sequential are flattened), so a chain of known layer types covers them; anything else is refused
with a clear message rather than translated approximately.
"""

from __future__ import annotations

from collections.abc import Callable

from vggedge.backend.keras_env import keras
from vggedge.core.errors import ModelError
from vggedge.models.anatomy import leaf_layers


def _activation(layer) -> str:  # noqa: ANN001
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) or str(act)
    return "linear" if name in (None, "None", "linear") else name


def _conv2d(layer):  # noqa: ANN001, ANN202
    return keras.layers.Conv2D(
        layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        activation=_activation(layer),
        use_bias=layer.use_bias,
        kernel_initializer="zeros",  # the weights are copied in at once: no random draw of a full-size kernel
        name=layer.name,
    )


def _dense(layer):  # noqa: ANN001, ANN202
    return keras.layers.Dense(
        layer.units,
        activation=_activation(layer),
        use_bias=layer.use_bias,
        kernel_initializer="zeros",  # copied over at once (fc1 alone is 103M weights: no random draw of it)
        name=layer.name,
    )


def _pool(cls: type) -> Callable:
    def make(layer):  # noqa: ANN001, ANN202
        return cls(layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name)

    return make


def _rescaling(layer):  # noqa: ANN001, ANN202
    return keras.layers.Rescaling(layer.scale, offset=layer.offset, name=layer.name)


def _batch_norm(layer):  # noqa: ANN001, ANN202
    return keras.layers.BatchNormalization(
        axis=layer.axis,
        momentum=layer.momentum,
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        name=layer.name,
    )


def _normalization(layer):  # noqa: ANN001, ANN202
    return keras.layers.Normalization(axis=layer.axis, name=layer.name)


TRANSLATORS: dict[str, Callable] = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "MaxPooling2D": _pool(keras.layers.MaxPooling2D),
    "AveragePooling2D": _pool(keras.layers.AveragePooling2D),
    "Flatten": lambda layer: keras.layers.Flatten(name=layer.name),
    "GlobalAveragePooling2D": lambda layer: keras.layers.GlobalAveragePooling2D(name=layer.name),
    "GlobalMaxPooling2D": lambda layer: keras.layers.GlobalMaxPooling2D(name=layer.name),
    "Dropout": lambda layer: keras.layers.Dropout(layer.rate, name=layer.name),
    "Activation": lambda layer: keras.layers.Activation(_activation(layer), name=layer.name),
    "ReLU": lambda layer: keras.layers.ReLU(name=layer.name),
    "Softmax": lambda layer: keras.layers.Softmax(name=layer.name),
    "Rescaling": _rescaling,
    "BatchNormalization": _batch_norm,
    "Normalization": _normalization,
}


def _chain(model) -> list:  # noqa: ANN001
    """(layer, trainable) in order, nested models flattened (see ``leaf_layers``); refuse a shared layer."""
    layers = leaf_layers(model)
    for layer, _ in layers:
        if len(getattr(layer, "_inbound_nodes", [None])) > 1 and type(layer).__name__ not in TRANSLATORS:
            raise ModelError(f"layer {layer.name!r} is shared; vggedge handles chain-shaped classifiers only")
    return layers


def keras3_to_keras2(model) -> keras.Model:  # noqa: ANN001
    """A tf_keras model computing the same function as the Keras 3 ``model``, weights copied."""
    input_shape = tuple(model.inputs[0].shape[1:])
    inputs = keras.Input(input_shape, name="pixels")
    x = inputs
    for layer, trainable in _chain(model):
        kind = type(layer).__name__
        if kind not in TRANSLATORS:
            known = ", ".join(sorted(TRANSLATORS))
            raise ModelError(f"cannot translate layer {layer.name!r} of type {kind} from Keras 3; supported: {known}")
        twin = TRANSLATORS[kind](layer)
        x = twin(x)
        weights = layer.get_weights()
        if weights:
            twin.set_weights(weights)
        twin.trainable = trainable
    return keras.Model(inputs, x, name=model.name)
