"""A VGG as its weights, whatever framework wrote it, and its exact Keras translation.

A VGG is convolutions (3x3, stride 1, padding 1), ReLUs, 2x2 max-pools, an optional BatchNormalization after each
convolution, a flatten and dense layers. Every one has an exact Keras counterpart, so a checkpoint from PyTorch
(:mod:`vggedge.models.torch_layout`) or an ONNX file (:mod:`vggedge.models.onnx_vgg`) is first read into
:class:`VGGWeights`, in the source's own layout (OIHW kernels, ``[out, in]`` dense weights, a channels-first flatten),
and :func:`keras_vgg` builds the Keras 2 model every recipe works on from it:

- OIHW kernels become HWIO; BatchNormalization keeps its statistics and its epsilon (PyTorch's 1e-5, not Keras' 1e-3);
- the first dense layer's rows are permuted from the source's (C, H, W) flatten order to Keras' (H, W, C);
- a global average pool before the classifier (``AdaptiveAvgPool2d(1)``, ONNX's ``GlobalAveragePool``) stays one;
- a BatchNorm1d right after a dense layer is folded into that layer's kernel and bias (the same affine map);
- dropout is dropped (inference), and the output gets a softmax (a sigmoid for one unit): the source's logits
  rank the classes the same way.

Layer names follow Keras Applications (``block1_conv1``, ``fc1``, ``predictions``), so recipes address them as on a
Keras VGG16.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.errors import ModelError
from vggedge.models.vgg import Preprocess, preprocessing_layer


@dataclasses.dataclass
class Norm:
    """A BatchNormalization's inference parameters, per channel."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    epsilon: float = 1e-5  # PyTorch's default


@dataclasses.dataclass
class Conv:
    """One 3x3 convolution in the source's OIHW layout, its bias (or None), its normalization, and whether a 2x2
    max-pool follows it (the last convolution of a block)."""

    kernel: np.ndarray  # [out, in, 3, 3]
    bias: np.ndarray | None
    norm: Norm | None = None
    pool_after: bool = False


@dataclasses.dataclass
class Dense:
    """One dense layer as ``y = x @ weight.T + bias`` (PyTorch's ``nn.Linear`` and ONNX's ``Gemm(transB=1)``), and the
    BatchNorm1d that directly follows it, before its ReLU, if any."""

    weight: np.ndarray  # [out, in]
    bias: np.ndarray | None
    norm: Norm | None = None

    def folded(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(kernel [in, out], bias) of the one dense layer that computes this layer and its normalization: the
        normalization is an affine map per output, so it folds exactly into the columns and the bias (its factors
        taken in float64; the kernel stays float32, as a full-size fc1 is 0.4 GB a copy)."""
        kernel = self.weight.T
        if self.norm is None:
            return kernel, self.bias
        norm = self.norm
        scale = np.asarray(norm.gamma, np.float64) / np.sqrt(np.asarray(norm.variance, np.float64) + norm.epsilon)
        bias = np.zeros(kernel.shape[1]) if self.bias is None else self.bias.astype(np.float64)
        return kernel * scale.astype(np.float32), (bias - norm.mean) * scale + norm.beta


@dataclasses.dataclass
class VGGWeights:
    """A VGG read from a foreign file: its convolutions in order, its dense layers in order, and where it came
    from (``framework``: "pytorch" or "onnx"; ``layout``: what told vggedge the architecture)."""

    convs: list[Conv]
    dense: list[Dense]
    framework: str
    layout: str
    class_names: list[str] | None = None
    flatten_order: str = "chw"  # the first dense layer's rows: PyTorch's (C, H, W), or "hwc" (a TensorFlow export's)
    channels_last_input: bool = False  # an ONNX file that takes NHWC images (a TensorFlow export)
    pool: str = "flatten"  # what joins the features to the classifier: "flatten", or "average" (a global average pool)
    image_size: int | None = None  # the input side the source declares (an ONNX file's input shape), if it does
    # The source's own forward pass on NCHW float32 batches where the file holds code (a TorchScript module), kept from
    # reading it so the file is not loaded twice; dropped once the translation is verified.
    runner: Callable[[np.ndarray], np.ndarray] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def blocks(self) -> list[int]:
        """Convolutions per block (VGG16: [2, 2, 3, 3, 3])."""
        counts, current = [], 0
        for conv in self.convs:
            current += 1
            if conv.pool_after:
                counts.append(current)
                current = 0
        return counts

    @property
    def classes(self) -> int:
        return int(self.dense[-1].weight.shape[0])

    def described(self) -> str:
        """What told vggedge the architecture (``layout``), with the head's facts the translation acts on."""
        facts = [self.layout]
        facts += ["a global average pool before the classifier"] if self.pool == "average" else []
        facts += ["BatchNorm1d in the classifier, folded into the dense layer before it"] if any(
            layer.norm is not None for layer in self.dense
        ) else []  # fmt: skip
        return ", ".join(facts)

    def feature_size(self) -> tuple[int, int]:
        """(channels, side) of the last pool's output that the first dense layer reads as a channels-first flatten:
        its input width must be channels x side x side (side 1 after a global average pool)."""
        channels = int(self.convs[-1].kernel.shape[0])
        if self.pool == "average" and self.dense[0].weight.shape[1] != channels:
            raise ModelError(
                f"the first dense layer takes {self.dense[0].weight.shape[1]} inputs after a global average pool of "
                f"the last convolution's {channels} channels"
            )
        cells = self.dense[0].weight.shape[1] / channels
        side = int(round(cells**0.5))
        if side * side * channels != self.dense[0].weight.shape[1]:
            raise ModelError(
                f"the first dense layer takes {self.dense[0].weight.shape[1]} inputs, which is no square feature map "
                f"of the last convolution's {channels} channels: not a VGG's flatten"
            )
        return channels, side

    def input_size(self) -> int:
        """The image side the flatten implies: 32 x the feature map's side (five 2x2 pools); 224 for torchvision's
        VGGs, whose ``AdaptiveAvgPool2d((7, 7))`` is then the identity. A global average pool takes any side: the
        one the source declares, else :data:`GAP_INPUT_SIZE`."""
        if self.pool == "average":
            return self.image_size or GAP_INPUT_SIZE
        return self.feature_size()[1] * 2 ** len(self.blocks)

    def check(self) -> None:
        """One line for anything :func:`keras_vgg` cannot translate exactly."""
        if not self.convs or not self.dense:
            raise ModelError("no convolution or no dense layer found: not a VGG")
        if not self.convs[-1].pool_after:
            raise ModelError("the last convolution is not followed by a max-pool: not a VGG's feature extractor")
        previous = 3
        for index, conv in enumerate(self.convs, start=1):
            out_channels, in_channels, height, width = conv.kernel.shape
            if (height, width) != (3, 3) or in_channels != previous:
                raise ModelError(
                    f"convolution {index}: a {height}x{width} kernel on {in_channels} channels after {previous}: "
                    "a VGG's convolutions are 3x3, each on the one before"
                )
            previous = out_channels
        self.feature_size()
        for index, (before, after) in enumerate(zip(self.dense, self.dense[1:], strict=False), start=2):
            if after.weight.shape[1] != before.weight.shape[0]:
                raise ModelError(f"dense layer {index} takes {after.weight.shape[1]}, the one before gives "
                                 f"{before.weight.shape[0]}")  # fmt: skip
        if self.class_names is not None and len(self.class_names) != self.classes:
            raise ModelError(
                f"the file names {len(self.class_names)} classes ({', '.join(self.class_names[:3])}…) but its last "
                f"layer outputs {self.classes}"
            )


GAP_INPUT_SIZE = 224  # a VGG with a global average pool, whose weights fix no input size: VGG16's own

# Where a checkpoint keeps its class names: a training checkpoint's keys beside the weights (ImageFolder's
# ``class_to_idx``), a safetensors file's metadata, an ONNX file's metadata (vggedge's own ONNX writes ``labels``).
CLASS_NAME_KEYS = ("class_names", "classes", "labels", "class_to_idx", "idx_to_class")


def class_names_in(found: dict) -> list[str] | None:
    """The class names a checkpoint carries under one of :data:`CLASS_NAME_KEYS`, in output order: a list of names, a
    name-to-index or index-to-name map, or text (a JSON list, or one name per line); None when it carries none."""
    for key in CLASS_NAME_KEYS:
        value = found.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = [line for line in value.splitlines() if line.strip()]
        if isinstance(value, dict) and value:
            try:
                pairs = [(int(v), str(k)) for k, v in value.items()] if key == "class_to_idx" else (
                    [(int(k), str(v)) for k, v in value.items()]
                )  # fmt: skip
            except (TypeError, ValueError):  # not an index map (a user's own dict under a common key): no names
                continue
            if sorted(index for index, _ in pairs) == list(range(len(pairs))):
                return [name for _, name in sorted(pairs)]
        if isinstance(value, (list, tuple)) and value and all(isinstance(name, (str, int)) for name in value):
            return [str(name) for name in value]
    return None


def keras_vgg(weights: VGGWeights, preprocess: Preprocess, name: str = "vgg") -> keras.Model:
    """The exact Keras 2 model of ``weights``, raw RGB pixels in (``preprocess`` as its first layer), class scores
    out."""
    weights.check()
    size = weights.input_size()
    inputs = keras.Input((size, size, 3), name="pixels")
    x = inputs
    layer = preprocessing_layer(preprocess)
    if layer is not None:
        x = layer(x)
    block, conv_in_block = 1, 0
    for conv in weights.convs:
        conv_in_block += 1
        x = _conv(x, conv, f"block{block}_conv{conv_in_block}")
        if conv.pool_after:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block, conv_in_block = block + 1, 0
    if weights.pool == "average":
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    channels, side = weights.feature_size()
    for index, dense in enumerate(weights.dense):
        last = index == len(weights.dense) - 1
        kernel, bias = dense.folded()  # [in, out]
        if index == 0 and weights.flatten_order == "chw":  # the source flattened (C, H, W); Keras flattens (H, W, C)
            kernel = kernel.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(side * side * channels, -1)
        activation = ("sigmoid" if kernel.shape[1] == 1 else "softmax") if last else "relu"
        layer_name = "predictions" if last else f"fc{index + 1}"
        layer = keras.layers.Dense(kernel.shape[1], activation=activation, use_bias=bias is not None,
                                   name=layer_name)  # fmt: skip
        x = layer(x)
        layer.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if bias is not None else []))
    return keras.Model(inputs, x, name=name)


def _conv(x, conv: Conv, name: str):  # noqa: ANN001, ANN202
    """A convolution, its normalization and its ReLU, each with the source's weights."""
    kernel = conv.kernel.transpose(2, 3, 1, 0).astype(np.float32)  # OIHW -> HWIO
    layer = keras.layers.Conv2D(
        kernel.shape[-1], 3, padding="same", use_bias=conv.bias is not None,
        activation=None if conv.norm else "relu", name=name,
    )  # fmt: skip
    x = layer(x)
    layer.set_weights([kernel] + ([conv.bias.astype(np.float32)] if conv.bias is not None else []))
    if conv.norm is None:
        return x
    norm = keras.layers.BatchNormalization(epsilon=conv.norm.epsilon, name=f"{name}_bn")
    x = norm(x)
    norm.set_weights([np.asarray(v, np.float32) for v in (conv.norm.gamma, conv.norm.beta, conv.norm.mean,
                                                          conv.norm.variance)])  # fmt: skip
    return keras.layers.ReLU(name=f"{name}_relu")(x)
