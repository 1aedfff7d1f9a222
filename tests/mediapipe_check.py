"""Run by a Python with MediaPipe 0.10 (and no vggedge, no TensorFlow): read a model's TFLite metadata with
MediaPipe's generated reader and classify images with MediaPipe Tasks' ImageClassifier.

    python mediapipe_check.py MODEL.tflite IMAGES.npy  ->  one JSON document on stdout

tests/test_metadata.py starts it in the venv `.ci/run` makes (VGGEDGE_MEDIAPIPE_PYTHON): MediaPipe 0.10 needs
numpy<2 and protobuf<5, which TensorFlow 2.21 does not run with.
"""

from __future__ import annotations

import json
import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_schema
from mediapipe.tasks.metadata import schema_py_generated as tflite_schema
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core import base_options


def text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def read_metadata(path: str) -> dict:
    with open(path, "rb") as file:
        data = file.read()
    model = tflite_schema.Model.GetRootAsModel(data, 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    found = [entry for entry in entries if entry.Name() == b"TFLITE_METADATA"]
    if not found:
        return {"entries": len(found)}
    raw = model.Buffers(found[0].Buffer()).DataAsNumpy().tobytes()
    root = metadata_schema.ModelMetadata.GetRootAsModelMetadata(raw, 0)
    graph = root.SubgraphMetadata(0)
    image, scores = graph.InputTensorMetadata(0), graph.OutputTensorMetadata(0)
    properties = metadata_schema.ImageProperties()
    content = image.Content()
    properties.Init(content.ContentProperties().Bytes, content.ContentProperties().Pos)
    normalization = None
    if image.ProcessUnitsLength():
        unit = image.ProcessUnits(0)
        options = metadata_schema.NormalizationOptions()
        options.Init(unit.Options().Bytes, unit.Options().Pos)
        normalization = {"mean": options.MeanAsNumpy().tolist(), "std": options.StdAsNumpy().tolist()}
    files = [scores.AssociatedFiles(i) for i in range(scores.AssociatedFilesLength())]
    return {
        "entries": len(found),
        "identifier": raw[4:8].decode(),
        "name": text(root.Name()),
        "version": text(root.Version()),
        "min_parser_version": text(root.MinParserVersion()),
        "input": {
            "name": text(image.Name()),
            "content_type": content.ContentPropertiesType(),
            "color_space": properties.ColorSpace(),
            "normalization": normalization,
        },
        "output": {
            "name": text(scores.Name()),
            "files": [{"name": text(f.Name()), "type": f.Type()} for f in files],
        },
    }


def classify(path: str, images: np.ndarray) -> list[list[dict]]:
    options = vision.ImageClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=path))
    answers = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            answers.append(
                [
                    {"index": c.index, "name": c.category_name, "score": float(c.score)}
                    for c in result.classifications[0].categories
                ]
            )
    return answers


def main() -> None:
    model, images = sys.argv[1], np.load(sys.argv[2])
    answers = classify(model, images)
    print(json.dumps({"mediapipe": mp.__version__, "metadata": read_metadata(model), "answers": answers}))


if __name__ == "__main__":
    main()
