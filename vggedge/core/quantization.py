"""Quantization as one concept: the TFLite conversion modes recipes name, and what each one needs.

Every module that cares about a mode (the recipe format, the converter, the QAT step, the
pipeline's calibration) asks this enum instead of comparing strings. No TensorFlow here.
"""

from __future__ import annotations

import enum


class Quantization(str, enum.Enum):
    """How the final TFLite model stores weights and computes; the value is what a recipe file says."""

    FLOAT32 = "float32"  # no quantize step: a float32 TFLite model
    DYNAMIC = "dynamic"  # int8 weights, float activations
    FLOAT16 = "float16"  # float16 weights
    INT8 = "int8"  # full integer, calibrated post-training
    INT8_QAT = "int8-qat"  # quantization-aware fine-tuning, then full integer

    @property
    def calibrated(self) -> bool:
        """Needs calibration images (activation ranges) at conversion."""
        return self in (Quantization.INT8, Quantization.INT8_QAT)

    @property
    def trains(self) -> bool:
        """Fine-tunes the Keras model before conversion (needs training images)."""
        return self is Quantization.INT8_QAT

    @property
    def integer_io(self) -> bool:
        """The TFLite model takes uint8 pixels and returns uint8 scores."""
        return self.calibrated

    @classmethod
    def recipe_modes(cls) -> tuple[str, ...]:
        """The modes a quantize step may name (float32 is the absence of one)."""
        return tuple(mode.value for mode in cls if mode is not Quantization.FLOAT32)
