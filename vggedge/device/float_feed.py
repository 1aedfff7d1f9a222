"""What the device models other than TFLite share: their runtime found (or one line on installing it), a float32
feed of raw pixels, one call per image under the call guard, and the class names and resize policy read from the
model's own metadata (each format says where: :meth:`FloatFeedModel._property`)."""

from __future__ import annotations

import importlib
from importlib import metadata

import numpy as np

from vggedge.core.errors import DeviceError
from vggedge.device import call_guard
from vggedge.device.runtime import ModelTooLarge, Runtime


def installed_runtime(module: str, distribution: str, what: str, entry: str) -> Runtime:
    """The runtime ``distribution`` (imported as ``module``; ``entry`` its session or core class), or one line
    saying ``what`` the model is and how to install it."""
    try:
        imported = importlib.import_module(module)
    except ImportError:
        raise DeviceError(f"this is {what} and {distribution} is not installed: pip install {distribution}") from None
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        version = getattr(imported, "__version__", "unknown")
    return Runtime(distribution, version, getattr(imported, entry))


def said(error: Exception) -> str:
    """A runtime's error in one line (some have none: their type then)."""
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


class FloatFeedModel:
    """Raw pixels fed as float32 (NHWC, one image), the scores read back as float; a subclass runs the feed
    (:meth:`_run`) and reads its metadata (:meth:`_property`)."""

    description = "inference"
    _feed: np.ndarray | None = None
    _last: np.ndarray | None = None

    def _take_shapes(
        self,
        counts: tuple[int, int],
        shape: list[int],
        out_shape: list[int],
        classifier: bool,
        max_io_bytes: int | None,
    ) -> None:
        """One input and one output, the input an NHWC image (unless ``classifier`` is False), within
        ``max_io_bytes``; sets ``input_shape``, ``input_size`` and ``classes_out``. Every refusal is one line."""
        if counts != (1, 1):
            raise DeviceError(f"{self.path} has {counts[0]} inputs and {counts[1]} outputs; expected one of each")
        if classifier and (len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]):
            raise DeviceError(f"{self.path} is not an NHWC image classifier: its input shape is {shape}")
        self.input_shape, self.input_size = tuple(shape[1:]), shape[1] if len(shape) > 1 else 0
        self.classes_out = int(np.prod(out_shape[1:]))
        io_bytes = 4 * (int(np.prod(shape)) + self.classes_out)
        if max_io_bytes is not None and io_bytes > max_io_bytes:
            raise ModelTooLarge(io_bytes, max_io_bytes)

    def _run(self, feed: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _property(self, key: str) -> str | None:
        raise NotImplementedError

    @property
    def input_dtype(self) -> str:
        return "float32"

    def labels_inside(self) -> list[str] | None:
        names = [line.strip() for line in (self._property("labels") or "").splitlines()]
        return names if names and all(names) else None

    def resize_inside(self) -> str | None:
        return self._property("resize") or None

    def set_input(self, pixels: np.ndarray) -> None:
        self._feed = np.ascontiguousarray(pixels[None], dtype=np.float32)

    def invoke_once(self) -> None:
        feed = self._feed
        self._last = call_guard.call(lambda: self._run(feed))

    def read_output(self) -> np.ndarray:
        return np.asarray(self._last, dtype=np.float32).reshape(1, -1)

    def predict_one(self, pixels: np.ndarray) -> np.ndarray:
        self.set_input(pixels)
        self.invoke_once()
        return self.read_output()[0]

    def predict(self, images: np.ndarray, progress: bool = False, description: str | None = None) -> np.ndarray:
        from vggedge.core.progress import track

        label = description or f"{self.description} inference"
        return np.stack([self.predict_one(x) for x in track(images, label, total=len(images), enabled=progress)])
