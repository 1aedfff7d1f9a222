"""The model formats vggedge writes and runs, known to both sides from this one TensorFlow-free table.

A format has a name (``--formats``), the file name a run folder gives it, the runtimes that run it (distribution
names, in order of preference) and a test on a file's first bytes: a model is recognised by its content, never by
its name. The workstation's writers (:mod:`vggedge.export`) and the device's loaders
(:func:`vggedge.device.models.load`) are looked up here by name; adding a format is a line here and one module on
each side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from vggedge.core.errors import DeviceError
from vggedge.core.model_path import not_a_model_file

HEAD_BYTES = 64  # what every test below needs of a file (an IR's XML declaration and its <net> tag)


def _is_tflite(head: bytes) -> bool:
    return head[4:8] == b"TFL3"  # the flatbuffer's file identifier


def _is_onnx(head: bytes) -> bool:
    # A ModelProto serialised by protobuf starts with field 1, ir_version (tag 0x08), a small varint (3 to 12 so
    # far); a TFLite flatbuffer starts with a 4-byte offset, an OpenVINO IR with "<?xml".
    return len(head) >= 2 and head[0] == 0x08 and 3 <= head[1] <= 32


def _is_openvino_ir(head: bytes) -> bool:
    return head.lstrip().startswith(b"<?xml") and b"<net " in head  # OpenVINO IR: <net> is its root element


@dataclasses.dataclass(frozen=True)
class ModelFormat:
    """One format: ``name`` (as ``--formats`` and reports say it), the ``filename`` a run folder gives it, the
    ``runtimes`` that run it (distribution names, preferred first) and ``matches`` (a file's first bytes)."""

    name: str
    filename: str
    runtimes: tuple[str, ...]
    matches: Callable[[bytes], bool]
    description: str
    companions: tuple[str, ...] = ()  # files beside it that are part of the model (an IR's weights)

    @property
    def suffix(self) -> str:
        return Path(self.filename).suffix


TFLITE = ModelFormat(
    "tflite", "model.tflite", ("ai-edge-litert", "tflite-runtime", "tensorflow"), _is_tflite, "a TFLite flatbuffer"
)
ONNX = ModelFormat("onnx", "model.onnx", ("onnxruntime",), _is_onnx, "an ONNX model")
OPENVINO = ModelFormat(
    "openvino", "model.xml", ("openvino",), _is_openvino_ir, "an OpenVINO IR", companions=("model.bin",)
)
FORMATS = (TFLITE, ONNX, OPENVINO)  # TFLite first: the default, and every report's first artifact


def model_files(path: Path | str, model_format: ModelFormat) -> list[Path]:
    """The model's file and the companions beside it (an IR's ``model.bin``)."""
    path = Path(path)
    return [path, *(path.with_name(Path(path.stem).with_suffix(Path(c).suffix).name) for c in model_format.companions)]


def model_bytes(path: Path | str) -> int:
    """The model's size on disk: its file and its companions, those present."""
    return sum(p.stat().st_size for p in model_files(path, format_of(path)) if p.is_file())


def by_name(name: str) -> ModelFormat:
    """The format called ``name``; one line naming the known ones otherwise."""
    for model_format in FORMATS:
        if model_format.name == name.strip().lower():
            return model_format
    raise DeviceError(f"unknown model format {name!r}: choose from {', '.join(f.name for f in FORMATS)}")


RUNTIME_ALIASES = {"litert": "ai-edge-litert"}  # what people call it -> its distribution name


def runtime_named(name: str) -> tuple[str, ModelFormat]:
    """(distribution name, the format it runs) for a runtime (``litert`` is ai-edge-litert); one line naming every
    runtime otherwise."""
    wanted = RUNTIME_ALIASES.get(name.strip().lower(), name.strip().lower())
    for model_format in FORMATS:
        if wanted in model_format.runtimes:
            return wanted, model_format
    known = ", ".join(runtime for f in FORMATS for runtime in f.runtimes)
    raise DeviceError(f"unknown runtime {name!r}: choose from litert ({known})")


def format_of(path: Path | str) -> ModelFormat:
    """The format of the model file at ``path``, by its content: one line for a missing, empty or unknown file."""
    path = Path(path)
    problem = not_a_model_file(path, " or ".join(f"a {f.suffix} file" for f in FORMATS))
    if problem:
        raise DeviceError(problem)
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    for model_format in FORMATS:
        if model_format.matches(head):
            return model_format
    known = ", ".join(f"{f.description} ({f.suffix})" for f in FORMATS)
    raise DeviceError(f"{path} is not a model vggedge runs: it is none of {known}")
