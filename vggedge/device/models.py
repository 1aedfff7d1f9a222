"""One way to open any model vggedge writes on the device: :func:`load` reads the file's format from its content
(:mod:`vggedge.core.formats`) and returns a :class:`DeviceModel`, whatever runs it.

Every place that runs a model (bench, the bench server's timing job, ``Classifier``, ``predict``, the profile, the
workstation's verification) goes through here. A runtime is imported only when a model of its format is loaded,
so a board with LiteRT alone never imports onnxruntime, and nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from vggedge.core.errors import DeviceError
from vggedge.core.formats import ModelFormat, format_of
from vggedge.device.runtime import Runtime

# format name -> "module:class" of its device-side model (each module imports its runtime when loaded)
LOADERS = {
    "tflite": "vggedge.device.runtime:TFLiteModel",
    "onnx": "vggedge.device.onnx_model:OnnxModel",
    "openvino": "vggedge.device.openvino_model:OpenVINOModel",
}


class DeviceModel(Protocol):
    """A classifier that takes raw RGB pixels (NHWC, one image) and gives float class scores, any format."""

    path: Path
    runtime: Runtime
    threads: int
    input_size: int
    input_shape: tuple[int, ...]  # without the batch axis
    classes_out: int  # output units (1 for a sigmoid head)
    model_format: ModelFormat

    @property
    def input_dtype(self) -> str: ...

    def predict_one(self, pixels: np.ndarray) -> np.ndarray: ...

    def predict(self, images: np.ndarray, progress: bool = False, description: str = ...) -> np.ndarray: ...

    def set_input(self, pixels: np.ndarray) -> None: ...

    def invoke_once(self) -> None: ...

    def read_output(self) -> np.ndarray: ...

    def labels_inside(self) -> list[str] | None: ...

    def resize_inside(self) -> str | None: ...


def load(
    path: Path | str,
    threads: int | None = None,
    runtime: str | None = None,
    max_io_bytes: int | None = None,
    classifier: bool = True,
) -> DeviceModel:
    """The model at ``path``, opened with ``runtime`` (a distribution name, e.g. ``onnxruntime``; None: the first
    installed one that runs its format) on ``threads`` (None: every core). ``max_io_bytes``: refuse a model whose
    input and output alone would take more, before any tensor is allocated; ``classifier=False``: any one-input
    model (a profiling kit's piece), not only an image classifier. Every failure is one line."""
    path = Path(path)
    model_format = format_of(path)
    if runtime is not None and runtime not in model_format.runtimes:
        raise DeviceError(
            f"{path} is {model_format.description}, which {runtime} does not run: "
            f"use {' or '.join(model_format.runtimes)}, or leave --runtime out"
        )
    module_name, class_name = LOADERS[model_format.name].split(":")
    model_class = getattr(importlib.import_module(module_name), class_name)
    return model_class(path, threads=threads, runtime=runtime, max_io_bytes=max_io_bytes, classifier=classifier)
