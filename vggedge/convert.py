"""Keras model -> TFLite flatbuffer, in one of the quantization modes recipes name.

``int8`` is full-integer: per-channel int8 weights, int8 activations calibrated on raw-pixel
calibration images, and uint8 input/output, so the model takes camera pixels as they come.
The calibration images go through the model's own preprocessing layer, which is exactly what
inference does: calibration and inference cannot disagree on preprocessing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vggedge.keras_env import keras, tf
from vggedge.quantization import Quantization


def convert(model: keras.Model, mode: Quantization | str, calibration_images: np.ndarray | None = None) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer; ``calibration_images`` (raw uint8 pixels) for calibrated modes."""
    mode = Quantization(mode)  # ValueError naming the value for an unknown mode
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode is Quantization.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-channel dynamic-range FULLY_CONNECTED is op version 12, which tflite-runtime 2.14 (what
        # many Raspberry Pis run) cannot load; per-tensor dense weights keep the model portable.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif mode is Quantization.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode.calibrated:
        if calibration_images is None or len(calibration_images) == 0:
            raise ValueError("int8 conversion needs calibration images")

        def representative() -> Iterator[list[np.ndarray]]:
            for pixels in calibration_images:
                yield [pixels[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()
