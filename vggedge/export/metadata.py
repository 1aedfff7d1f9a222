"""Standard TFLite model metadata in every model vggedge writes: the image input and the class names inside it.

A classifier ``.tflite`` that carries this metadata (schema ``metadata_schema.fbs`` of TFLite Support and
MediaPipe, file identifier ``M001``) runs unchanged in MediaPipe Tasks' ``ImageClassifier`` and in the other
tools of that ecosystem: they read from it that the input is an RGB image, how its pixels are normalized, and
the class names, which travel as an associated file (``labels.txt``) in a zip archive appended to the
flatbuffer.

Why written here and not by a metadata writer: the well-kept writers do not install beside TensorFlow 2.21
and tfmot (MediaPipe 1.2 pins absl-py~=2.3 where tfmot pins ~=1.2, and its wheel lacks the compiled module
its writer imports; MediaPipe 0.10 needs numpy<2 and protobuf<5; tflite-support's protos fail under protobuf
7). The metadata is a small flatbuffer built with the ``flatbuffers`` library (a TensorFlow dependency); the
model is re-serialized with TensorFlow's own TFLite object API, as those writers do it, except that every
weight buffer starts on 16 bytes (the schema's ``force_align``; the generated code aligns a byte vector to 1,
TensorFlow 2.21's converter wrote 4). ``tests/test_metadata.py`` reads the result with MediaPipe's
reader and classifies with its ``ImageClassifier`` in a venv of its own.

What is written (field numbers are the schema's; a union takes two, its type then its value):
- the model: name, description, version (vggedge's), author, ``min_parser_version`` 1.0.0 (no field newer
  than the schema's first version is used);
- the input: ``image``, ImageProperties RGB, its range 0-255 as Stats, and for a float input the
  NormalizationOptions mean 0, std 1 that MediaPipe requires (the model's own preprocessing is inside it:
  it takes raw pixels);
- the output: ``probability``, its range 0-1, and ``labels.txt`` as TENSOR_AXIS_LABELS: one name per output
  score, so a 1-unit sigmoid model names its positive class only (MediaPipe reads one label per score).
"""

from __future__ import annotations

import io
import json
import types
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import flatbuffers
import numpy as np

from vggedge.core.labels import LABELS_FILE, SETTINGS_FILE

METADATA_BUFFER_NAME = "TFLITE_METADATA"  # the name readers look for among the model's metadata entries
METADATA_FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"
BUFFER_ALIGNMENT = 16  # the TFLite schema's force_align for buffer data

# Enum values of metadata_schema.fbs
_ASSOCIATED_FILE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE_PROPERTIES = 1
_CONTENT_IMAGE_PROPERTIES = 2
_PROCESS_UNIT_NORMALIZATION = 1
# TFLite TensorType values (schema.fbs)
_TENSOR_FLOAT32 = 0
_TENSOR_UINT8 = 3


@dataclass(frozen=True)
class ClassifierMetadata:
    """What a vggedge classifier's metadata says."""

    name: str
    description: str
    labels: list[str]  # one per output score
    float_input: bool


def vggedge_version() -> str:
    try:
        return version("vggedge")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown"


def labels_for_outputs(names: list[str], outputs: int) -> list[str]:
    """The names of the model's output scores: all of them, or for a 1-unit sigmoid output the positive
    (second) class only."""
    if outputs == 1 and len(names) == 2:
        return [names[1]]
    if outputs != len(names):
        raise ValueError(f"{len(names)} class names for a model with {outputs} output scores")
    return list(names)


def add_classifier_metadata(
    flatbuffer: bytes, name: str, description: str, class_names: list[str], resize: str = "stretch"
) -> bytes:
    """``flatbuffer`` with standard classifier metadata and ``labels.txt`` packed in, and vggedge's own
    ``vggedge.json`` (how images were fitted to the input: ``resize``), so ``predict`` and ``Classifier`` resize as
    the model was measured. The graph, its tensors and its weights are unchanged, so is every output."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    image, scores = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if image.type not in (_TENSOR_FLOAT32, _TENSOR_UINT8) or len(image.shape) != 4 or image.shape[-1] != 3:
        raise ValueError(f"not an image classifier input: shape {list(image.shape)}, type {image.type}")
    labels = labels_for_outputs(class_names, int(np.prod(scores.shape[1:])))
    described = ClassifierMetadata(name, description, labels, float_input=image.type == _TENSOR_FLOAT32)
    model.metadata = [entry for entry in (model.metadata or []) if _name(entry.name) != METADATA_BUFFER_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(classifier_metadata(described), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_BUFFER_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    for item in model.buffers:  # bound to the instance: ModelT.Pack calls item.Pack(builder)
        item.Pack = types.MethodType(_pack_buffer_aligned, item)
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = io.BytesIO(builder.Output())  # one copy of a model that may be hundreds of MB
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "".join(f"{label}\n" for label in labels))
        archive.writestr(SETTINGS_FILE, json.dumps({"resize": resize}) + "\n")
    return packed.getvalue()


def _name(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _pack_buffer_aligned(buffer, builder: flatbuffers.Builder) -> int:  # noqa: ANN001
    """BufferT.Pack with the weights' bytes on 16 bytes (the generated code aligns a uint8 vector to 1 byte,
    which kernels reading float or int32 weights in place do not expect)."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = None
    if buffer.data is not None and len(buffer.data):
        raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
        builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
        builder.head -= len(raw)
        builder.Bytes[builder.head : builder.head + len(raw)] = raw
        data = builder.EndVector()
    schema.BufferStart(builder)
    if data is not None:
        schema.BufferAddData(builder, data)
    schema.BufferAddOffset(builder, buffer.offset)
    schema.BufferAddSize(builder, buffer.size)
    return schema.BufferEnd(builder)


def classifier_metadata(described: ClassifierMetadata) -> bytes:
    """The ModelMetadata flatbuffer (``M001``) of an image classifier."""
    b = flatbuffers.Builder(1024)
    labels_file = _table(
        b,
        [
            (0, "offset", b.CreateString(LABELS_FILE)),
            (1, "offset", b.CreateString("Class names, one per output score, in the output's order.")),
            (2, "int8", _ASSOCIATED_FILE_TENSOR_AXIS_LABELS),
        ],
    )
    image_properties = _table(b, [(0, "int8", _COLOR_SPACE_RGB)])
    image_content = _table(b, [(0, "uint8", _CONTENT_IMAGE_PROPERTIES), (1, "offset", image_properties)])
    input_units = []
    if described.float_input:
        normalization = _table(b, [(0, "offset", _floats(b, [0.0])), (1, "offset", _floats(b, [1.0]))])
        input_units.append(_table(b, [(0, "uint8", _PROCESS_UNIT_NORMALIZATION), (1, "offset", normalization)]))
    input_stats = _table(b, [(0, "offset", _floats(b, [255.0])), (1, "offset", _floats(b, [0.0]))])
    input_fields = [
        (0, "offset", b.CreateString("image")),
        (1, "offset", b.CreateString("RGB pixels 0-255; the model's own preprocessing is inside it.")),
        (3, "offset", image_content),
        (5, "offset", input_stats),
    ]
    if input_units:
        input_fields.append((4, "offset", _vector(b, input_units)))
    image_tensor = _table(b, input_fields)
    feature_properties = _table(b, [])
    scores_content = _table(b, [(0, "uint8", _CONTENT_FEATURE_PROPERTIES), (1, "offset", feature_properties)])
    scores_stats = _table(b, [(0, "offset", _floats(b, [1.0])), (1, "offset", _floats(b, [0.0]))])
    scores_tensor = _table(
        b,
        [
            (0, "offset", b.CreateString("probability")),
            (1, "offset", b.CreateString("The score of each class named in labels.txt.")),
            (3, "offset", scores_content),
            (5, "offset", scores_stats),
            (6, "offset", _vector(b, [labels_file])),
        ],
    )
    subgraph = _table(
        b,
        [
            (2, "offset", _vector(b, [image_tensor])),
            (3, "offset", _vector(b, [scores_tensor])),
        ],
    )
    model = _table(
        b,
        [
            (0, "offset", b.CreateString(described.name)),
            (1, "offset", b.CreateString(described.description)),
            (2, "offset", b.CreateString(vggedge_version())),
            (3, "offset", _vector(b, [subgraph])),
            (4, "offset", b.CreateString("vggedge")),
            (7, "offset", b.CreateString(MIN_PARSER_VERSION)),
        ],
    )
    b.Finish(model, file_identifier=METADATA_FILE_IDENTIFIER)
    return bytes(b.Output())


def _table(b: flatbuffers.Builder, fields: list[tuple[int, str, int]]) -> int:
    """A table from (slot, kind, value); every child (string, vector, table) already built."""
    b.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
    for slot, kind, value in fields:
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "int8":
            b.PrependInt8Slot(slot, value, 0)
        else:
            b.PrependUint8Slot(slot, value, 0)
    return b.EndObject()


def _vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(value)
    return b.EndVector()
