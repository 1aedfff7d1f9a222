"""An OpenVINO IR classifier (``model.xml`` + ``model.bin``) on the CPU, with the interface of every device model
(:mod:`vggedge.device.models`).

vggedge's IR takes what its TFLite models take (raw RGB pixels, NHWC, float32; an int8 IR quantizes inside) and
gives class scores; its class names and resize policy are in the model's ``rt_info`` under ``vggedge``. Float
layers run in float32 (``INFERENCE_PRECISION_HINT``): on a CPU with bfloat16 OpenVINO would otherwise compute in
bf16, and the file would not be the model that was verified. openvino is imported here only, when an IR is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vggedge.core.errors import DeviceError
from vggedge.core.formats import OPENVINO
from vggedge.device.float_feed import FloatFeedModel, installed_runtime, said
from vggedge.device.runtime import Runtime, default_threads


class _SignalStack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def signal_stack_kept() -> Iterator[None]:
    """The calling thread's alternate signal stack, as it was before the block.

    OpenVINO's CPU plugin gives the thread that compiles a model a signal stack of its own and puts back, when that
    model is freed, the one it found. Freed in another order (two models, the first freed first), the thread is left
    with a stack that no longer exists, and the next signal handled on it (Ctrl-C: Python's handlers run on the
    alternate stack) is a segmentation fault. Put back at once, every model finds, and later restores, the
    thread's own. (Linux; elsewhere nothing is done.)"""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        before = _SignalStack()
        saved = libc.sigaltstack(None, ctypes.byref(before)) == 0
    except (OSError, AttributeError):
        saved = False
    try:
        yield
    finally:
        if saved:
            libc.sigaltstack(ctypes.byref(before), None)


def openvino_runtime() -> Runtime:
    """OpenVINO, or one line on how to install it."""
    return installed_runtime("openvino", "openvino", "an OpenVINO IR", "Core")


class OpenVINOModel(FloatFeedModel):
    """One compiled model on the CPU plugin, ``threads`` inference threads, latency mode, one image at a time."""

    model_format, description = OPENVINO, "OpenVINO"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        runtime: str | None = None,
        max_io_bytes: int | None = None,
        classifier: bool = True,
    ) -> None:
        self.path, self.runtime = Path(path), openvino_runtime()
        self.threads = threads or default_threads()
        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise DeviceError(f"{self.path} is an OpenVINO IR without its weights: {weights.name} is not beside it")
        core = self.runtime.interpreter_class()
        try:
            self._model = core.read_model(str(self.path))
        except Exception as error:  # noqa: BLE001 - OpenVINO raises its own classes for a bad file
            raise DeviceError(f"{self.path} could not be read by openvino: {said(error)}") from None
        inputs, outputs = self._model.inputs, self._model.outputs
        static = [
            [d.get_length() if d.is_static else 1 for d in t.get_partial_shape()] for t in (*inputs, *outputs)[:2]
        ]
        self._take_shapes((len(inputs), len(outputs)), static[0], static[-1], classifier, max_io_bytes)
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        with signal_stack_kept():
            try:
                compiled = core.compile_model(self._model, "CPU", config)
            except Exception as error:  # noqa: BLE001
                raise DeviceError(f"{self.path} could not be compiled by openvino: {said(error)}") from None
            self._request, self._output = compiled.create_infer_request(), compiled.outputs[0]

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return self._request.infer([feed])[self._output]

    def _property(self, key: str) -> str | None:
        try:
            return str(self._model.get_rt_info(["vggedge", key]).astype(str)) or None
        except Exception:  # noqa: BLE001 - absent: an IR vggedge did not write
            return None
