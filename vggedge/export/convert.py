"""Keras model -> TFLite flatbuffer, in one of the quantization modes recipes name.

``int8`` is full-integer: per-channel int8 weights, int8 activations calibrated on raw-pixel
calibration images, and uint8 input/output, so the model takes camera pixels as they come.
The calibration images go through the model's own preprocessing layer, which is exactly what
inference does: calibration and inference cannot disagree on preprocessing.

Memory is the constraint that shapes this module: the full-size VGG16 has 138M weights (553 MB as
float32), and every copy the converter makes costs that much again. Measured on the full model (peak
RSS of the whole ``optimize --recipe int8`` process, random weights, 2 cores):

- ``from_keras_model`` with the MLIR quantizer, as TensorFlow's guide does it: 7.2 GB for the conversion
  alone. Most of it is three passes that copy the whole model: the MLIR quantizer (+3.4 GB),
  ``add_intermediate_tensors`` (+2.5 GB, a rewrite that only recurrent fused ops need) and the
  Keras-to-graph trace.
- Here: converted from a SavedModel written to a scratch folder (the converter reads the weights from
  disk instead of tracing the live model; the SavedModel holds one inference function and the weights,
  not the Keras model, see :func:`serving_module`), the per-channel calibrating quantizer that works on the
  flatbuffer in place (``experimental_new_quantizer = False``; TensorFlow keeps it for exactly this
  kind of model), and the recurrent-op rewrite skipped for models without recurrent layers: 3.1 GB.

Every result is still verified against its Keras source, so a quantizer that did worse would show as
a failed verification, not as a silently worse model.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vggedge.backend.keras_env import keras, tf
from vggedge.core.quantization import Quantization


def convert(
    model: keras.Model,
    mode: Quantization | str,
    calibration_images: np.ndarray | None = None,
    scratch: Path | None = None,
    io_type: tf.DType | None = None,
) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer; ``calibration_images`` (raw uint8 pixels) for calibrated modes.

    ``scratch``: a folder on disk for the intermediate SavedModel (the size of the float32 weights),
    deleted before returning; default: the system's temporary folder. ``io_type``: a calibrated model's input and
    output type instead of uint8 (the profiling kit's pieces take ``tf.int8``, so they hold no QUANTIZE op)."""
    mode = Quantization(mode)  # ValueError naming the value for an unknown mode
    if mode.calibrated and (calibration_images is None or len(calibration_images) == 0):
        raise ValueError("int8 conversion needs calibration images")
    with saved_converter(model, scratch) as converter:
        configure(converter, mode, calibration_images)
        if io_type is not None and mode.calibrated:
            converter.inference_input_type = converter.inference_output_type = io_type
        with skip_recurrent_rewrite(model):
            return converter.convert()


@contextlib.contextmanager
def saved_converter(model: keras.Model, scratch: Path | None) -> Iterator[tf.lite.TFLiteConverter]:
    """A converter reading ``model`` from a scratch SavedModel (:func:`serving_module`), deleted after."""
    with tempfile.TemporaryDirectory(prefix=".vggedge-savedmodel-", dir=scratch) as folder:
        module = serving_module(model)
        tf.saved_model.save(module, folder, signatures=module.serve)
        yield tf.lite.TFLiteConverter.from_saved_model(folder)


def calibrate(model: keras.Model, calibration_images: np.ndarray, scratch: Path | None = None) -> bytes:
    """The float TFLite model with the activation ranges measured on ``calibration_images``: what
    :func:`quantize_calibrated` turns into int8 as often as needed, without calibrating again."""
    with saved_converter(model, scratch) as converter:
        configure(converter, Quantization.INT8, calibration_images)
        converter.inference_input_type = converter.inference_output_type = tf.float32  # the quantizer sets them
        converter._experimental_calibrate_only = True
        with skip_recurrent_rewrite(model):
            return converter.convert()


def quantize_calibrated(calibrated: bytes, keep_float: Sequence[str] = ()) -> bytes:
    """A calibrated model (:func:`calibrate`) as full int8 with uint8 input and output, except the ops whose
    output tensors are named in ``keep_float``: those compute in float between a dequantize and a quantize.

    This is TensorFlow's MLIR quantizer, the one that takes a deny-list (the quantization debugger's selective
    quantization uses it); it needs about +3.4 GB on the full VGG16 (module docstring), which is why only a
    float fallback takes this path."""
    # Private: the quantizer behind the debugger (importlib: TensorFlow's lazy `tensorflow.lite` hides the package).
    lite_convert = importlib.import_module("tensorflow.lite.python.convert")
    return lite_convert.mlir_quantize(
        calibrated,
        input_data_type=tf.uint8,
        output_data_type=tf.uint8,
        denylisted_nodes=list(keep_float) or None,
    )


def op_outputs(flatbuffer: bytes, layers: Sequence[str]) -> list[str]:
    """The output tensor names of the ops that ``layers`` (Keras names) became: TFLite names an op after the
    graph locations it fused, ``;``-joined, each ``model/layer/Op``."""
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    wanted = set(layers)
    names = []
    for op in interpreter._get_ops_details():
        if not len(op["outputs"]):
            continue
        name = interpreter._get_tensor_details(int(op["outputs"][0]), 0)["name"]
        if wanted & fused_locations(name):
            names.append(name)
    return names


def fused_locations(tensor_name: str) -> set[str]:
    """The graph-location segments of a TFLite tensor name (``a/conv2d_3/Conv2D;a/re_lu_3/Relu`` -> every part
    between ``;`` and ``/``): the Keras layer names an op fused are among them."""
    return {segment for part in tensor_name.split(";") for segment in part.split("/")}


def serving_module(model: keras.Model) -> tf.Module:
    """What the scratch SavedModel holds: the model's weights and one inference function, not the Keras model.

    Saving the Keras model itself traces every layer's call for Keras' own reloading, which the converter
    never uses: on the 1/4-width VGG16 that was 5 of the conversion's 7 seconds (the same flatbuffer ops, the
    same outputs bit for bit). The input keeps the model's name (``pixels``) and a free batch dimension."""
    module = tf.Module()
    module.weights = list(model.variables)  # tracked, so the SavedModel holds them and the function reads them
    name = getattr(model, "input_names", None) or ["pixels"]
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=name[0])
    module.serve = tf.function(lambda pixels: model(pixels, training=False), input_signature=[spec])
    return module


def configure(converter: tf.lite.TFLiteConverter, mode: Quantization, calibration_images: np.ndarray | None) -> None:
    """Set the converter's options for ``mode``."""
    if mode is Quantization.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-channel dynamic-range FULLY_CONNECTED is op version 12, which tflite-runtime 2.14 (what
        # many Raspberry Pis run) cannot load; per-tensor dense weights keep the model portable.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif mode is Quantization.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode.calibrated:

        def representative() -> Iterator[list[np.ndarray]]:
            for pixels in calibration_images:
                yield [pixels[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        # The calibrating quantizer that rewrites the flatbuffer in place: +0.7 GB on the full VGG16
        # where the MLIR quantizer takes +3.4 GB (see the module docstring).
        converter.experimental_new_quantizer = False


@contextlib.contextmanager
def skip_recurrent_rewrite(model: keras.Model) -> Iterator[None]:
    """Skip the converter's ``add_intermediate_tensors`` pass for a model without recurrent layers.

    The pass adds the intermediate tensors that fused LSTM ops need for calibration; for any other
    model it rewrites the flatbuffer into the same graph, and on the full VGG16 that rewrite alone
    peaks at +2.5 GB. A model with a recurrent layer keeps the pass. (A private TensorFlow hook:
    when it moves, conversion keeps working, only with the pass.)"""
    try:
        from tensorflow.lite.python.optimize import calibrator
    except ImportError:  # pragma: no cover - a TensorFlow without the hook: nothing to skip
        yield
        return
    recurrent = any(isinstance(layer, keras.layers.RNN) for layer in model.submodules)
    original = getattr(calibrator, "add_intermediate_tensors", None)
    if recurrent or original is None:
        yield
        return
    calibrator.add_intermediate_tensors = lambda model_content: model_content
    try:
        yield
    finally:
        calibrator.add_intermediate_tensors = original
