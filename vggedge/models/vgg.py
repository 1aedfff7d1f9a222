"""VGG as data: one function builds every VGG16-topology model vggedge uses.

The full ImageNet VGG16, the offline sample model and the tiny test fixtures differ only in the
numbers of :class:`VGGSpec` (input size, width multiplier, dense units, classes), so the recipes
exercise the same layer names and shapes everywhere. Layer names follow Keras Applications
(``block{n}_conv{m}``, ``block{n}_pool``, ``flatten``, ``fc1``, ``fc2``, ``predictions``) so that
head swaps and layer selections are addressable by name.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from vggedge.backend.keras_env import keras

# Filters per conv layer, block by block: VGG16's 13 conv layers in five blocks.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)

Preprocess = Literal["caffe", "unit", "tf", "torch", "none"]
PREPROCESS_NAME = "preprocess"  # the layer --preprocess prepends; model anatomy recognises it by this name
# ImageNet channel means in BGR order, as Keras' `preprocess_input(mode="caffe")` subtracts them.
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
# torchvision's ImageNet normalization of x / 255, in RGB order: what PyTorch checkpoints expect.
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class VGGSpec:
    """Numbers that define a VGG16-topology classifier whose input is raw RGB pixels in [0, 255]."""

    input_size: int = 224
    classes: int = 1000
    width: float = 1.0
    dense_units: int = 4096
    preprocess: Preprocess = "caffe"

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise ValueError(f"input_size must be >= 32 (five 2x2 poolings). Received: {self.input_size}")
        if self.classes < 2:
            raise ValueError(f"classes must be >= 2. Received: {self.classes}")
        if not 0 < self.width <= 1:
            raise ValueError(f"width must be in (0, 1]. Received: {self.width}")

    @property
    def filters(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(max(1, round(f * self.width)) for f in block) for block in VGG16_BLOCKS)


def preprocessing_layer(mode: Preprocess) -> keras.layers.Layer | None:
    """Preprocessing as a standard layer, so it is part of the exported model.

    Baking it in means the TFLite model takes raw RGB pixels and a device needs no TensorFlow (and
    no copy of the preprocessing code) to prepare its input. Standard layers only: a Lambda would
    make the Keras model unsafe to reload.
    """
    if mode == "none":
        return None
    if mode == "unit":
        return keras.layers.Rescaling(1.0 / 255, name=PREPROCESS_NAME)
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=PREPROCESS_NAME)
    if mode == "caffe":
        # RGB -> BGR and mean subtraction as one exact 1x1 convolution with a permutation matrix.
        return _per_channel_affine(np.eye(3, dtype=np.float32)[:, ::-1], -CAFFE_BGR_MEAN)
    if mode == "torch":
        # (x / 255 - mean) / std per channel, as one 1x1 convolution with a diagonal kernel.
        return _per_channel_affine(np.diag(1.0 / (255.0 * TORCH_STD)), -TORCH_MEAN / TORCH_STD)
    raise ValueError(f"unknown preprocessing {mode!r}; expected caffe, unit, tf, torch or none")


def _per_channel_affine(matrix: np.ndarray, offset: np.ndarray) -> keras.layers.Layer:
    """``pixels @ matrix + offset`` on each pixel: a frozen 1x1 convolution named :data:`PREPROCESS_NAME`."""
    layer = keras.layers.Conv2D(3, 1, name=PREPROCESS_NAME, trainable=False)
    layer.build((None, None, None, 3))
    layer.set_weights([matrix.reshape(1, 1, 3, 3).astype(np.float32), offset.astype(np.float32)])
    return layer


def preprocess_pixels(images: np.ndarray, mode: Preprocess) -> np.ndarray:
    """What :func:`preprocessing_layer` computes, in numpy: a foreign model's reference input."""
    x = images.astype(np.float32)
    if mode == "unit":
        return x / 255.0
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - TORCH_MEAN) / TORCH_STD
    if mode == "caffe":
        return x[..., ::-1] - CAFFE_BGR_MEAN
    return x


def conv_base(x, filters: tuple[tuple[int, ...], ...], initializer: str = "glorot_uniform"):  # noqa: ANN001, ANN201
    """The 13 conv layers and 5 poolings, with Keras Applications' layer names."""
    for block, block_filters in enumerate(filters, start=1):
        for conv, n in enumerate(block_filters, start=1):
            x = keras.layers.Conv2D(
                n,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=initializer,
                name=f"block{block}_conv{conv}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return x


def dense_head(x, classes: int, dense_units: int, initializer: str = "glorot_uniform"):  # noqa: ANN001, ANN201
    """VGG16's original head: Flatten -> fc1 -> fc2 -> softmax predictions."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer=initializer, name="fc1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer=initializer, name="fc2")(x)
    return keras.layers.Dense(classes, activation="softmax", name="predictions")(x)


def build_vgg16(spec: VGGSpec, initializer: str = "glorot_uniform", name: str = "vgg16") -> keras.Model:
    """Build an untrained VGG16-topology classifier (raw pixels in, class probabilities out)."""
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="pixels")
    x = inputs
    layer = preprocessing_layer(spec.preprocess)
    if layer is not None:
        x = layer(x)
    x = conv_base(x, spec.filters, initializer)
    outputs = dense_head(x, spec.classes, spec.dense_units, initializer)
    return keras.Model(inputs, outputs, name=name)


def with_preprocessing(model: keras.Model, mode: Preprocess) -> keras.Model:
    """Return a flat model that applies ``mode`` preprocessing to raw pixels before ``model``.

    Used for models whose preprocessing lives outside them (Keras' ImageNet VGG16 expects
    ``preprocess_input`` to be applied by the caller). The chain's layers are copied (config and
    weights), not nested and not shared, so layer names stay addressable by the recipe steps and
    every layer belongs to exactly one graph (a shared layer's ``.input`` would be ambiguous).
    """
    layer = preprocessing_layer(mode)
    if layer is None:
        return model
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    x = append_copies(layer(inputs), [(inner, inner.trainable) for inner in model.layers[1:]])
    return keras.Model(inputs, x, name=model.name)


def append_copies(x, layers: list[tuple[keras.layers.Layer, bool]]):  # noqa: ANN001, ANN201
    """Apply a fresh copy (config and weights, nothing shared) of each layer to ``x`` in turn, with the
    given ``trainable`` flag; returns the output tensor."""
    for layer, trainable in layers:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        if layer.get_weights():
            copy.set_weights(layer.get_weights())
        copy.trainable = trainable
    return x
