"""The light TFLite interpreter, without TensorFlow: ai-edge-litert, else tflite-runtime, else tf.lite.

This is the module a Raspberry Pi runs. ``tflite-runtime`` wheels stop at Python 3.11;
``ai-edge-litert`` is its successor with the same Interpreter API, so both are supported and the
one found first is reported. TensorFlow's own ``tf.lite`` is only a last resort on a workstation.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from importlib import metadata
from pathlib import Path

import numpy as np

from vggedge.core.errors import DeviceError
from vggedge.core.formats import TFLITE
from vggedge.core.labels import labels_in_model, resize_in_model
from vggedge.core.model_path import not_a_model_file
from vggedge.device import call_guard

# (module to import, distribution name for its version), in order of preference.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


@dataclasses.dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: type


def find_runtime(preferred: str | None = None) -> Runtime:
    """The first importable runtime (or ``preferred``, by distribution name, e.g. ``tflite-runtime``)."""
    candidates = [r for r in RUNTIMES if preferred in (None, r[1])]
    if not candidates:
        raise DeviceError(f"unknown runtime {preferred!r}; choose one of {', '.join(r[1] for r in RUNTIMES)}")
    for module_name, dist in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "unknown"
        return Runtime(dist, version, module.Interpreter)
    if preferred is not None:
        raise DeviceError(
            f"the runtime asked for ({preferred}, by --runtime or VGGEDGE_RUNTIME) is not installed here: "
            f"pip install {preferred}, or leave the setting out to use any installed one"
        )
    raise DeviceError(
        "no TFLite interpreter is installed: pip install ai-edge-litert (or tflite-runtime on Python <= 3.11)"
    )


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class TFLiteModel:
    """A TFLite classifier that takes raw RGB pixels and returns float class scores.

    Input quantization is read from the model, so uint8/int8 models are fed exactly the pixel
    values their calibration saw; outputs are dequantized the same way.
    """

    model_format = TFLITE

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        runtime: Runtime | str | None = None,
        max_io_bytes: int | None = None,
        classifier: bool = True,
    ) -> None:
        """``runtime``: a :class:`Runtime`, or its distribution name (None: the first installed).
        ``max_io_bytes``: refuse (:class:`ModelTooLarge`) a model whose declared input and output tensors alone
        take more, before any tensor is allocated (the bench server's memory limit). ``classifier=False``: any
        one-input, one-output model (a profiling kit's piece), not only an image classifier."""
        self.path = Path(path)
        self.runtime = runtime if isinstance(runtime, Runtime) else find_runtime(runtime)
        self.threads = threads or default_threads()
        check_tflite_file(self.path)
        try:
            self.interpreter = self.runtime.interpreter_class(model_path=str(self.path), num_threads=self.threads)
        except (ValueError, RuntimeError) as error:
            raise DeviceError(f"{self.path} could not be loaded by {self.runtime.name}: {_said(error)}") from None
        if max_io_bytes is not None and self.declared_io_bytes() > max_io_bytes:
            raise ModelTooLarge(self.declared_io_bytes(), max_io_bytes)
        try:
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise TensorsNotAllocated(f"{self.path}: its tensors could not be allocated ({_said(error)})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise DeviceError(f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; expected one of each")
        self.input, self.output = inputs[0], outputs[0]
        shape = tuple(int(s) for s in self.input["shape"])
        if classifier and (len(shape) != 4 or shape[-1] != 3):
            raise DeviceError(f"{self.path} is not an image classifier: its input shape is {shape}")
        self.input_shape = shape[1:]
        self.input_size = shape[1] if len(shape) > 1 else 0
        self.classes_out = int(np.prod(self.output["shape"][1:]))

    def labels_inside(self) -> list[str] | None:
        """The class names in the model's metadata (its zip of associated files), or None."""
        return labels_in_model(self.path)

    def resize_inside(self) -> str | None:
        """How the model's images were fitted (``vggedge.json`` in its metadata), or None."""
        return resize_in_model(self.path)

    def declared_io_bytes(self) -> int:
        """The bytes the model's input and output tensors declare (readable before they are allocated)."""
        details = self.interpreter.get_input_details() + self.interpreter.get_output_details()
        return sum(int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize for d in details)

    @property
    def input_dtype(self) -> str:
        return np.dtype(self.input["dtype"]).name

    def _quantize_input(self, pixels: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        scale, zero_point = self.input["quantization"]
        if dtype.kind in "iu" and scale:
            info = np.iinfo(dtype)
            values = np.round(pixels.astype(np.float32) / scale + zero_point)
            return np.clip(values, info.min, info.max).astype(dtype)
        return pixels.astype(dtype)

    def _dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output["quantization"]
        if np.dtype(self.output["dtype"]).kind in "iu" and scale:
            return (raw.astype(np.float32) - zero_point) * scale
        return raw.astype(np.float32)

    def predict_one(self, pixels: np.ndarray) -> np.ndarray:
        """Scores for one (H, W, 3) image of raw pixels."""
        self.interpreter.set_tensor(self.input["index"], self._quantize_input(pixels[None]))
        call_guard.call(self.interpreter.invoke)
        return self.read_output()[0]

    def read_output(self) -> np.ndarray:
        """The last invocation's output, dequantized to float: shape (1, outputs)."""
        return self._dequantize_output(self.interpreter.get_tensor(self.output["index"]))

    def predict(self, images: np.ndarray, progress: bool = False, description: str = "TFLite inference") -> np.ndarray:
        from vggedge.core.progress import track

        return np.stack([self.predict_one(x) for x in track(images, description, total=len(images), enabled=progress)])

    def invoke_once(self) -> None:
        """One invocation on whatever input is set: what latency measurements time."""
        call_guard.call(self.interpreter.invoke)

    def set_input(self, pixels: np.ndarray) -> None:
        self.interpreter.set_tensor(self.input["index"], self._quantize_input(pixels[None]))


def _said(error: Exception) -> str:
    """An interpreter error's first line, or its type when it has no message (some have none)."""
    return str(error).splitlines()[0][:160] if str(error).strip() else type(error).__name__


class TensorsNotAllocated(DeviceError):
    """The interpreter loaded the model but could not allocate its tensors (out of memory, or a bad graph)."""


class ModelTooLarge(DeviceError):
    """A model whose declared input and output alone exceed the memory it may take."""

    def __init__(self, needed: int, allowed: int) -> None:
        super().__init__(f"the model's input and output need {needed / 1e6:.0f} MB; {allowed / 1e6:.0f} MB are allowed")
        self.needed, self.allowed = needed, allowed


TFLITE_MAGIC = b"TFL3"


def check_tflite_file(path: Path) -> None:
    """Refuse a missing, empty, truncated or non-TFLite file before the interpreter sees it."""
    path = Path(path)
    problem = not_a_model_file(path, "a .tflite file")
    if problem:
        raise DeviceError(problem)
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:8] != TFLITE_MAGIC:
        raise DeviceError(f"{path} is not a TFLite model (no TFL3 flatbuffer identifier)")
