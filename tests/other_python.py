"""`vggedge predict` run by another Python (the tflite-runtime venv, the emulated aarch64 userland), checked
image by image against the Classifier here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np


def predict_elsewhere(
    python: str, model: Path, images: np.ndarray, folder: Path, *args: str, env: dict | None = None, timeout: int = 600
) -> dict:
    """``images`` saved as PNGs in ``folder``, classified by ``python -m vggedge predict MODEL FOLDER --json ARGS``;
    its JSON answer, after checking that every image's top-1 label is the one the Classifier gives here."""
    from PIL import Image

    from vggedge import Classifier

    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    done = subprocess.run(
        [python, "-m", "vggedge", "predict", str(model), str(folder), "--json", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert len(answer["images"]) == len(images)
    ours = Classifier(model, threads=1)
    for item in answer["images"]:
        assert item["top"][0]["label"] == ours.predict(item["image"], top=1)[0][0], item["image"]
    return answer
