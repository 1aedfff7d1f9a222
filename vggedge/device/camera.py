"""``vggedge predict MODEL --camera``: classify the Raspberry Pi camera's frames live, with Picamera2.

Picamera2 names formats by the libcamera/DRM convention, so its ``RGB888`` arrives in numpy as B,G,R and
its ``BGR888`` as R,G,B: we ask for ``BGR888``, which is the RGB order the model was trained on. The camera is
passed in as a factory, so the channel order and the loop are tested with a fake camera on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from vggedge.core.errors import UserError
from vggedge.device.classifier import Classifier

# numpy R,G,B from Picamera2 (see the module docstring)
CAMERA_FORMAT = "BGR888"
CAMERA_SIZE = (640, 480)


class Camera(Protocol):
    def create_preview_configuration(self, main: dict) -> object: ...
    def configure(self, config: object) -> None: ...
    def start(self) -> None: ...
    def capture_array(self) -> np.ndarray: ...
    def stop(self) -> None: ...


def picamera2() -> Camera:
    """The Pi's camera; one line naming the package when it is not installed."""
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError:
        raise UserError(
            "--camera needs Picamera2: sudo apt install python3-picamera2 (then make the venv with "
            "--system-site-packages), or pip install picamera2"
        ) from None
    try:
        return Picamera2()
    except IndexError:  # Picamera2's camera list is empty
        raise UserError(
            "no camera found by Picamera2: is one connected and enabled (rpicam-hello --list-cameras)?"
        ) from None
    except (
        RuntimeError
    ) as error:  # "Failed to acquire camera: Device or resource busy", or a camera that fails to start
        raise UserError(
            f"Picamera2 cannot open the camera ({str(error).splitlines()[0] if str(error) else 'no reason given'}): "
            "is another program using it?"
        ) from None


def frames(camera: Camera) -> Iterator[np.ndarray]:
    """R,G,B uint8 frames, for as long as the caller takes them; the camera is stopped afterwards."""
    camera.configure(camera.create_preview_configuration(main={"size": CAMERA_SIZE, "format": CAMERA_FORMAT}))
    camera.start()
    try:
        while True:
            frame = camera.capture_array()
            yield np.ascontiguousarray(frame[..., :3])  # XRGB8888-style buffers carry a fourth byte
    finally:
        camera.stop()


def run_camera(
    classifier: Classifier,
    print_line: Callable[[str], None],
    camera_factory: Callable[[], Camera] = picamera2,
    max_frames: int | None = None,
    every_s: float = 1.0,
) -> int:
    """Classify frames until Ctrl-C (or ``max_frames``); a line per ``every_s``: top class, score, frames/s.
    Returns the number of frames classified."""
    count, window_start, window_frames = 0, time.perf_counter(), 0
    try:
        for frame in frames(camera_factory()):
            label, score = classifier.predict(frame, top=1)[0]
            count += 1
            window_frames += 1
            now = time.perf_counter()
            if now - window_start >= every_s or count == max_frames:
                fps = window_frames / max(now - window_start, 1e-9)
                print_line(f"{label} {score:.2f}  {fps:.1f} frames/s  (model {classifier.last_ms:.1f} ms)")
                window_start, window_frames = now, 0
            if max_frames is not None and count >= max_frames:
                break
    except KeyboardInterrupt:
        pass
    return count
