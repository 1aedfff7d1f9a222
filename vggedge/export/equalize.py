"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", ICCV 2019): the same function, with
weight ranges int8 can hold.

int8 activations share one scale per tensor. When one output channel of a conv is much larger than its
neighbours (a BatchNormalization folded into the weights, a training recipe, or a user's own rescaling
leave such channels behind), that channel stretches the scale and every other channel rounds to a few
levels, or to zero: the model collapses although its float function is fine.

ReLU and max-pooling commute with a positive per-channel scale (``relu(x / s) = relu(x) / s``), so output
channel ``c`` of a layer A may be divided by ``s_c`` and the input weights of channel ``c`` in the next
layer B multiplied by ``s_c`` without changing what the pair computes. With ``s_c = sqrt(r1_c / r2_c)``,
where ``r1_c`` is the range of A's weights for output channel ``c`` and ``r2_c`` that of B's weights for
input channel ``c``, both become ``sqrt(r1_c · r2_c)``: equal, so neither layer's channel dominates. Pairs
are equalized over the whole chain, sweep after sweep, until the scales settle.

A pair is A, B ∈ {Conv2D, Dense} with only layers that commute with the scale between them (ReLU,
max/average pooling, global pooling, Flatten, Dropout) and A's own activation ReLU or linear.
BatchNormalization is folded first (the converter folds it anyway, so the exported model is the same
function). Bias absorption (the paper's second step) is not done: on VGG16's ReLU chains it did not move
any figure that equalization did not already fix.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.models.anatomy import chain_layers
from vggedge.models.copying import clone_with
from vggedge.models.normalization import fold_batch_norm

WEIGHTED = (keras.layers.Conv2D, keras.layers.Dense)
COMMUTING = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
    keras.layers.Dropout,
)
# One sweep already balanced a 1000x channel (the imbalance form: int8 24% -> 97.7%, the same after 2, 4, 8 or
# 50 sweeps); a second settles the neighbours. Each sweep reads and rescales the full VGG16's 411 MB fc1 kernel.
MAX_SWEEPS = 2
SETTLED = 1e-2  # largest |log s| of a sweep (1%) below which the scales have settled


@dataclasses.dataclass(frozen=True)
class Pair:
    first: str
    second: str
    flattened: bool  # a Flatten between them: B's input rows cycle through A's channels


def equalize(model: keras.Model) -> tuple[keras.Model, dict]:
    """A copy of the chain ``model``, equalized, and a record for the report (pairs, sweeps, how far the
    largest channel-range ratio came down). ``model`` itself is untouched."""
    # Folding copies the model, but returns a model with nothing to fold as it is: then a copy is made here, so
    # the rescaling below never writes into the model the caller passed.
    folded, _ = fold_batch_norm(model)
    model = clone_with(model, lambda layer: layer, set()) if folded is model else folded
    pairs = find_pairs(model)
    names = {name for pair in pairs for name in (pair.first, pair.second)}
    # The arrays are rescaled in numpy and written back once: the full VGG16's fc1 alone is 411 MB.
    weights = {name: model.get_layer(name).get_weights() for name in names}  # copies, rescaled in place
    before = _worst_ratio(weights, pairs)
    sweeps = 0
    for sweeps in range(1, MAX_SWEEPS + 1):  # noqa: B007 - the count goes in the record
        largest = max((_equalize_pair(weights, pair) for pair in pairs), default=0.0)
        if largest < SETTLED:
            break
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)
    return model, {
        "pairs": len(pairs),
        "sweeps": sweeps if pairs else 0,
        "largest_channel_ratio_before": _rounded(before),
        "largest_channel_ratio_after": _rounded(_worst_ratio(weights, pairs)),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def find_pairs(model: keras.Model) -> list[Pair]:
    """The consecutive conv/dense pairs a positive per-channel scale passes between unchanged."""
    pairs: list[Pair] = []
    layers = chain_layers(model)
    for i, first in enumerate(layers):
        if not isinstance(first, WEIGHTED) or _activation(first) not in ("relu", "linear"):
            continue
        flattened = False
        for layer in layers[i + 1 :]:
            if isinstance(layer, WEIGHTED):
                pairs.append(Pair(first.name, layer.name, flattened))
                break
            if isinstance(layer, keras.layers.Flatten):
                flattened = True
            if not (isinstance(layer, COMMUTING) or _is_plain_relu(layer)):
                break
    return pairs


def _activation(layer: keras.layers.Layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _is_plain_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        return not config.get("max_value") and not config.get("negative_slope") and not config.get("threshold")
    return isinstance(layer, keras.layers.Activation) and _activation(layer) == "relu"


def _ranges(weights: dict[str, list[np.ndarray]], pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Per channel between the pair: range of A's output weights, range of B's input weights."""
    kernel_a, kernel_b = weights[pair.first][0], weights[pair.second][0]
    channels = kernel_a.shape[-1]
    r1 = _abs_max(kernel_a.reshape(-1, channels), axis=0)
    r2 = _abs_max(_input_rows(kernel_b, channels, pair.flattened), axis=(0, 2))
    return r1, r2


def _abs_max(array: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """max |array| along ``axis`` without an |array| copy (the full VGG16's fc1 kernel is 411 MB)."""
    return np.maximum(array.max(axis=axis), -array.min(axis=axis))


def _input_rows(kernel: np.ndarray, channels: int, flattened: bool) -> np.ndarray:
    """B's weights as (positions, channels, outputs), a view: a conv's kernel window, or a flattened dense's
    rows (Flatten orders rows position-major, channel last)."""
    if kernel.ndim == 4:  # (kh, kw, in, out)
        return kernel.reshape(-1, kernel.shape[2], kernel.shape[3])
    return kernel.reshape(-1, channels, kernel.shape[-1]) if flattened else kernel[None]


def _equalize_pair(weights: dict[str, list[np.ndarray]], pair: Pair) -> float:
    """Rescale one pair's arrays in place; the largest |log s| applied (how far from settled it was)."""
    r1, r2 = _ranges(weights, pair)
    live = (r1 > 0) & (r2 > 0)
    scale = np.ones_like(r1)
    scale[live] = np.sqrt(r1[live] / r2[live])
    first, second = weights[pair.first], weights[pair.second]
    first[0] /= scale
    if len(first) > 1:
        first[1] /= scale
    kernel = second[0]
    if kernel.ndim == 4:
        kernel *= scale[None, None, :, None]
    elif pair.flattened:
        kernel.reshape(-1, len(scale), kernel.shape[-1])[...] *= scale[None, :, None]
    else:
        kernel *= scale[:, None]
    return float(np.abs(np.log(scale)).max()) if len(scale) else 0.0


def _worst_ratio(weights: dict[str, list[np.ndarray]], pairs: list[Pair]) -> float | None:
    """The largest ratio of a channel's weight range to its layer's median channel range, over every
    pair's first layer: how unevenly one layer's output channels are scaled."""
    worst = None
    for pair in pairs:
        r1, _ = _ranges(weights, pair)
        median = float(np.median(r1))
        if median > 0:
            ratio = float(r1.max()) / median
            worst = ratio if worst is None else max(worst, ratio)
    return worst
