"""What a path given as a model is, when it is not a model file: said truly, for every command that takes one.

A folder passed as the model (a SavedModel, a run folder by mistake) was answered "does not exist", which is false
and sends a user looking for a typo. Standard library only: the device side asks too.
"""

from __future__ import annotations

from pathlib import Path

from vggedge.core.formatting import printable


def not_a_model_file(path: Path, wanted: str) -> str | None:
    """None when ``path`` is a regular file; else one line on what it is instead and what to pass (``wanted``: the
    kind of file the command reads, e.g. "a .tflite file")."""
    path = Path(path)
    shown = printable(path)
    if path.is_file():
        return None
    if not path.exists():
        return f"model file {shown} does not exist: pass {wanted}"
    if not path.is_dir():
        return f"{shown} is not a regular file: pass {wanted}"
    if (path / "saved_model.pb").is_file():
        return (
            f"{shown} is a TensorFlow SavedModel folder: `vggedge optimize --model {shown}` reads it and writes "
            f"the model.tflite this command runs; pass {wanted}"
        )
    if (path / "model.tflite").is_file():
        return f"{shown} is a folder (a vggedge run folder, it seems): its model is {printable(path / 'model.tflite')}"
    return f"{shown} is a folder, not a model file: pass {wanted}"
