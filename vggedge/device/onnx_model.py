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


def session_options(threads: int):  # noqa: ANN201 - onnxruntime.SessionOptions, imported only here
    """ONNX Runtime's session options as vggedge runs a model: ``threads`` intra-op threads, one inter-op thread, and
    idle pool threads that sleep instead of spinning.

    Spinning (ONNX Runtime's default) keeps a session's idle threads busy-waiting on the cores after each run, so the
    next model, another session or another process, runs on cores already taken: interleaved timing (``bench``, the
    benchmarks) then slows every model, the short ones most, while alone a session gained nothing measurable from
    spinning. The figures and the command: docs/performance.md ("ONNX Runtime's spinning threads")."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
    return options


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
        options = session_options(self.threads)
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
