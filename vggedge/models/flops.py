"""Multiply-accumulates per image, counted from a Keras model's layers.

File size does not predict latency: the dense head is ~90% of VGG16's weights but <1% of its
compute. This count is what filter pruning reduces and what latency follows.
"""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras


def count_macs(model: keras.Model) -> int:
    """MACs for one image through every Conv2D and Dense layer (pooling and activations are noise)."""
    total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # tfmot wrappers (shapes from the wrapper: its inner layer
        if isinstance(inner, keras.layers.Conv2D):  # is never called on its own in a cloned QAT model)
            out_h, out_w = layer.output_shape[1:3]
            k_h, k_w = inner.kernel_size
            in_channels = int(layer.input_shape[-1])
            total += int(out_h) * int(out_w) * k_h * k_w * in_channels * inner.filters
        elif isinstance(inner, keras.layers.Dense):
            total += int(np.prod(inner.kernel.shape))
    return total


def flops(model: keras.Model) -> int:
    """FLOPs per image, counting a multiply-accumulate as two operations (as papers quote VGG16's 30.9 GFLOPs)."""
    return 2 * count_macs(model)
