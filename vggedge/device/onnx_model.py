"""An ONNX classifier run by ONNX Runtime, with the interface of every device model (:mod:`vggedge.device.models`).

vggedge's ONNX files take what its TFLite models take (raw RGB pixels, NHWC, float32; an int8 model quantizes
inside, QDQ) and give class scores; their class names and resize policy are in the model's metadata properties
(``labels``, one a line; ``resize``). onnxruntime is imported here only, when an ONNX model is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggedge.core.errors import DeviceError
from vggedge.core.formats import ONNX
from vggedge.device.float_feed import FloatFeedModel, installed_runtime, said
from vggedge.device.runtime import Runtime, default_threads


def onnx_runtime() -> Runtime:
    """ONNX Runtime, or one line on how to install it."""
    return installed_runtime("onnxruntime", "onnxruntime", "an ONNX model", "InferenceSession")


class OnnxModel(FloatFeedModel):
    """One ONNX Runtime session on the CPU, ``threads`` intra-op threads, one image at a time."""

    model_format, description = ONNX, "ONNX"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        runtime: str | None = None,
        max_io_bytes: int | None = None,
        classifier: bool = True,
    ) -> None:
        import onnxruntime

        self.path, self.runtime = Path(path), onnx_runtime()
        self.threads = threads or default_threads()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own classes for a bad file
            raise DeviceError(f"{self.path} could not be loaded by onnxruntime: {said(error)}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        static = [[d if isinstance(d, int) else 1 for d in tensor.shape] for tensor in (*inputs, *outputs)[:2]]
        self._take_shapes((len(inputs), len(outputs)), static[0], static[-1], classifier, max_io_bytes)
        self.input_name = inputs[0].name
        self._properties = self.session.get_modelmeta().custom_metadata_map

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: feed})[0]

    def _property(self, key: str) -> str | None:
        return self._properties.get(key)
