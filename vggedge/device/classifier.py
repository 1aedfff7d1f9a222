"""``Classifier``: a vggedge model in an application, in three lines and without TensorFlow.

    from vggedge import Classifier
    classifier = Classifier("model.tflite", threads=4)
    classifier.predict("cat.jpg")        # [("cat", 0.97), ("dog", 0.02), ...]

An image is a PIL image, a path, or an HxWx3 uint8 array (RGB), read by the one rule ``optimize`` evaluated
with (:mod:`vggedge.core.images`: EXIF orientation, 16-bit scaled, transparency on white, bilinear resize); the
model takes raw pixels, its preprocessing is inside it. Names come from the model's metadata, else ``labels.txt``
beside it, else the class indices. An unreadable file raises :class:`vggedge.DataError` naming it and why.

Thread-safe: one interpreter per instance, used under a lock, so threads sharing a ``Classifier`` take turns
(for parallel inference, one ``Classifier`` per thread). Results are plain Python types.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from vggedge.core.errors import UserError
from vggedge.core.images import model_pixels, read_pixels
from vggedge.core.labels import find_labels, read_labels_file
from vggedge.core.metrics import as_class_scores
from vggedge.device.models import load

ImageLike = Image.Image | str | Path | np.ndarray


class Classifier:
    def __init__(
        self,
        model: str | Path,
        threads: int | None = None,
        labels: list[str] | str | Path | None = None,
        runtime: str | None = None,
        resize: str | None = None,
    ) -> None:
        """``resize``: how a picture is fitted to the input; None: as the model was measured (its metadata says;
        ``stretch`` for a model that does not)."""
        from vggedge.core.quiet import native_stderr_silenced
        from vggedge.core.run_folder import check_complete

        check_complete(Path(model).parent)  # a run folder's model is the one its report describes, or refused
        with native_stderr_silenced():  # the delegate's "INFO: Created TensorFlow Lite XNNPACK delegate" notice
            self.model = load(Path(model), threads=threads, runtime=runtime)
        self._lock = threading.Lock()
        outputs = self.model.classes_out
        self.classes = 2 if outputs == 1 else outputs  # a 1-unit sigmoid answers two classes
        if labels is None:
            self.labels, self.labels_source = find_labels(Path(model), self.classes, self.model.labels_inside())
        else:
            names = read_labels_file(Path(labels)) if isinstance(labels, (str, Path)) else list(labels)
            if len(names) != self.classes:
                raise UserError(f"{len(names)} labels given for a model of {self.classes} classes")
            self.labels, self.labels_source = names, "given"
        from vggedge.core.images import RESIZE_MODES

        self.resize = resize or self.model.resize_inside() or "stretch"
        if self.resize not in RESIZE_MODES:
            raise UserError(f"resize must be one of {', '.join(RESIZE_MODES)}. Received: {self.resize!r}")
        self.last_ms: float | None = None  # the interpreter's time for the latest image, any thread (decoding excluded)

    @property
    def input_size(self) -> int:
        return self.model.input_size

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else str(index)

    def pixels(self, image: ImageLike) -> np.ndarray:
        """Any accepted image as the model's (size, size, 3) uint8 input."""
        size = self.input_size
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise UserError(f"an image array must be HxWx3 uint8 RGB, not {image.shape} {image.dtype}")
            if image.shape[:2] == (size, size):
                return image
            return model_pixels(Image.fromarray(image), size, self.resize)
        if isinstance(image, Image.Image):
            return model_pixels(image, size, self.resize)
        return read_pixels(image, size, self.resize)

    def scores(self, image: ImageLike) -> np.ndarray:
        """Every class's score for one image (decoded outside the lock; the interpreter used under it)."""
        pixels = self.pixels(image)
        with self._lock:
            self.model.set_input(pixels)
            started = time.perf_counter()
            self.model.invoke_once()
            self.last_ms = (time.perf_counter() - started) * 1000.0
            return as_class_scores(self.model.read_output())[0].copy()

    def predict(self, image: ImageLike, top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` classes, best first, as (label, score): a ``str`` and a ``float``."""
        scores = self.scores(image)
        order = np.argsort(-scores, kind="stable")[: max(1, top)]
        return [(self.label(int(i)), float(scores[i])) for i in order]

    def predict_batch(self, images: list[ImageLike], top: int = 3) -> list[list[tuple[str, float]]]:
        """:meth:`predict` for each image, in order (the model takes one image per call: batch 1)."""
        return [self.predict(image, top) for image in images]

    def latency_ms(self, runs: int = 10) -> float:
        """The p50 of ``runs`` warm invocations on the latest input (after one untimed): what one image costs once
        the interpreter is warm, not the first call's set-up."""
        with self._lock:
            self.model.invoke_once()
            timings = []
            for _ in range(max(1, runs)):
                started = time.perf_counter()
                self.model.invoke_once()
                timings.append((time.perf_counter() - started) * 1000.0)
        return float(np.median(timings))


@dataclasses.dataclass
class Classified:
    """What :func:`classify_files` found: per readable image its top classes, the files it could not read (each
    named with its reason), and the p50 of the interpreter's time per image."""

    answers: list[dict]
    skipped: list[str]
    p50_ms: float


def classify_files(
    classifier: Classifier, paths: list[Path], top: int = 3, on_answer: Callable[[Path, list], None] | None = None
) -> Classified:
    """Every file in turn (``on_answer`` hears each as it comes); an unreadable file is skipped with its reason, and
    refused (:class:`vggedge.DataError`) when none is readable. With fewer than five images the p50 comes from warm
    runs: one image's single call would report the interpreter's first-call set-up."""
    answers, latencies, skipped = [], [], []
    for path in paths:
        try:
            best = classifier.predict(path, top=top)
        except UserError as error:
            skipped.append(str(error))
            continue
        latencies.append(classifier.last_ms)
        answers.append(
            {"image": str(path), "top": [{"label": label, "score": round(score, 6)} for label, score in best]}
        )
        if on_answer is not None:
            on_answer(path, best)
    if not answers:
        if len(paths) == 1:
            raise UserError(skipped[0])
        raise UserError(f"none of the {len(paths)} files could be decoded as an image (e.g. {skipped[0]})")
    p50 = float(np.median(latencies)) if len(latencies) >= 5 else classifier.latency_ms(runs=10)
    return Classified(answers, skipped, p50)
