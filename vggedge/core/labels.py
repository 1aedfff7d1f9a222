"""Class names: ``labels.txt`` in every run folder, and a model's own labels when it carries TFLite metadata.

The order of the names is the order of the model's outputs: the data folders' names, sorted as
``vggedge.core.data`` sorts them (``--labels FILE`` for a model without data). A TFLite model that carries
standard metadata keeps its associated files (its labels file) in a zip archive appended to the
flatbuffer, so the standard library's ``zipfile`` reads them on a device with no metadata library.

vggedge writes that metadata into every model (``vggedge.export.metadata``) and ``labels.txt`` beside it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from vggedge.core.atomic import write_text
from vggedge.core.errors import DataError

LABELS_FILE = "labels.txt"
SETTINGS_FILE = "vggedge.json"  # beside the labels in the model's zip: how its images were fitted (resize)


def write_labels(folder: Path, names: list[str]) -> Path:
    path = Path(folder) / LABELS_FILE
    write_text(path, "".join(f"{name}\n" for name in names))
    return path


def parse_labels(text: str, source: str) -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or any(not name for name in names):
        raise DataError(f"{source}: one class name a line, none empty")
    return names


def read_labels_file(path: Path) -> list[str]:
    """``--labels FILE``: one name a line, in the model's output order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the labels file {path}: {error}") from None
    return parse_labels(text, str(path))


def labels_in_model(path: Path) -> list[str] | None:
    """The labels file packed in a TFLite model's metadata, or None when the model carries none."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith(".txt")]
            chosen = LABELS_FILE if LABELS_FILE in names else (names[0] if names else None)
            if chosen is None:
                return None
            return parse_labels(archive.read(chosen).decode("utf-8"), f"{path}:{chosen}")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None


def resize_in_model(path: Path) -> str | None:
    """The resize policy the model was measured with (``vggedge.json`` in its metadata's zip), or None."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            if SETTINGS_FILE not in archive.namelist():
                return None
            value = json.loads(archive.read(SETTINGS_FILE)).get("resize")
            return value if isinstance(value, str) else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None


def find_labels(model: Path, classes: int, inside: list[str] | None = None) -> tuple[list[str] | None, str]:
    """(names, where they came from): the model's metadata (``inside``, as its format reads it; None: a TFLite
    model's zip), else ``labels.txt`` beside it, whichever names as many classes as the model has. A sigmoid
    model's metadata names its positive class only (one score per label, as MediaPipe reads it): with no two-name
    file beside it, the other class is "not <name>"."""
    beside = Path(model).parent / LABELS_FILE
    inside = inside if inside is not None else labels_in_model(model)
    candidates = [(inside, "the model's metadata")] if inside is not None else []
    if beside.is_file():
        candidates.append((read_labels_file(beside), str(beside)))
    for names, source in candidates:
        if len(names) == classes:
            return names, source
    for names, source in candidates:
        if len(names) == 1 and classes == 2:
            return [f"not {names[0]}", names[0]], f"{source} (its positive class)"
    if candidates:
        names, source = candidates[0]
        return None, f"{source} names {len(names)} classes but the model has {classes}: classes are shown by index"
    return None, "no labels in the model or beside it: classes are shown by index"
