"""Standard TFLite metadata in every model: the class names and the image input inside model.tflite, read back
by vggedge and by MediaPipe (its metadata reader and its ImageClassifier), with every output unchanged."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vggedge.core.labels import LABELS_FILE, find_labels, labels_in_model
from vggedge.device.runtime import TFLiteModel
from vggedge.export.metadata import (
    BUFFER_ALIGNMENT,
    METADATA_BUFFER_NAME,
    add_classifier_metadata,
    labels_for_outputs,
)

MEDIAPIPE_PYTHON = os.environ.get("VGGEDGE_MEDIAPIPE_PYTHON")
MEDIAPIPE_CHECK = Path(__file__).with_name("mediapipe_check.py")
NAMES = [f"class {c}" for c in "abcdefghij"]


@pytest.fixture(scope="module")
def small_models(digits) -> dict[str, bytes]:
    """{quantization: flatbuffer} of a small untrained VGG: float32 (float pixels in) and int8 (uint8 in and out)."""
    from vggedge.export.convert import convert
    from vggedge.models.vgg import VGGSpec, build_vgg16

    spec = VGGSpec(input_size=32, classes=10, width=1 / 16, dense_units=32, preprocess="unit")
    model = build_vgg16(spec, name="labelled")
    calibration = digits.train.images[:32].astype(np.float32)
    return {"float32": convert(model, "float32"), "int8": convert(model, "int8", calibration)}


def metadata_entries(flatbuffer: bytes) -> list[tuple[str, bytes]]:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    return [(e.Name().decode(), model.Buffers(e.Buffer()).DataAsNumpy().tobytes()) for e in entries]


def buffer_offsets(flatbuffer: bytes) -> list[int]:
    """Where each non-empty weight buffer's bytes start in the file."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    base = np.frombuffer(flatbuffer, dtype=np.uint8).__array_interface__["data"][0]
    offsets = []
    for i in range(model.BuffersLength()):
        data = model.Buffers(i).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            offsets.append(data.__array_interface__["data"][0] - base)
    return offsets


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_metadata_changes_no_output_and_carries_the_labels(small_models, digits, tmp_path, quantization):
    plain = small_models[quantization]
    labelled = add_classifier_metadata(plain, "labelled (test)", "a test model", NAMES)
    (tmp_path / "plain.tflite").write_bytes(plain)
    (tmp_path / "labelled.tflite").write_bytes(labelled)
    images = digits.eval.images[:20]
    outputs = [TFLiteModel(tmp_path / f"{n}.tflite", threads=1).predict(images) for n in ("plain", "labelled")]
    assert np.array_equal(outputs[0], outputs[1])
    assert labels_in_model(tmp_path / "labelled.tflite") == NAMES
    assert find_labels(tmp_path / "labelled.tflite", 10) == (NAMES, "the model's metadata")
    ours = [data for name, data in metadata_entries(labelled) if name == METADATA_BUFFER_NAME]
    assert len(ours) == 1 and ours[0][4:8] == b"M001"
    # The converter's other entries (its runtime version) survive, and the metadata costs about a kilobyte.
    assert {n for n, _ in metadata_entries(plain)} < {n for n, _ in metadata_entries(labelled)}
    assert 0 < len(labelled) - len(plain) < 4096
    # Re-serialized, every weight buffer starts on 16 bytes (the schema's force_align; the converter wrote 4).
    assert all(offset % 4 == 0 for offset in buffer_offsets(plain))
    assert all(offset % BUFFER_ALIGNMENT == 0 for offset in buffer_offsets(labelled))


def test_metadata_written_again_replaces_itself(small_models, tmp_path):
    once = add_classifier_metadata(small_models["int8"], "m", "first", NAMES)
    twice = add_classifier_metadata(once[: once.rindex(b"PK\x03\x04")], "m", "second", list("0123456789"))
    assert [n for n, _ in metadata_entries(twice)].count(METADATA_BUFFER_NAME) == 1
    (tmp_path / "m.tflite").write_bytes(twice)
    assert labels_in_model(tmp_path / "m.tflite") == list("0123456789")


def test_a_sigmoid_output_names_its_positive_class():
    assert labels_for_outputs(["high", "low"], 1) == ["low"]
    assert labels_for_outputs(["cat", "dog", "fox"], 3) == ["cat", "dog", "fox"]
    with pytest.raises(ValueError, match="3 class names for a model with 2 output scores"):
        labels_for_outputs(["cat", "dog", "fox"], 2)


def test_a_model_without_an_image_input_gets_no_metadata():
    from vggedge.backend.keras_env import keras
    from vggedge.export.convert import convert

    table = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="not an image classifier input"):
        add_classifier_metadata(convert(table, "float32"), "table", "not an image model", ["a", "b", "c"])


@pytest.mark.slow
def test_every_run_carries_its_labels_in_the_model(all_runs, form_runs):
    folders = [all_runs, *form_runs.values()]
    models = sorted(path for folder in folders for path in folder.glob("*/model.tflite"))
    assert len(models) >= 20
    for model in models:
        names = (model.parent / LABELS_FILE).read_text().split()
        outputs = int(np.prod(TFLiteModel(model, threads=1).output["shape"][1:]))
        assert labels_in_model(model) == labels_for_outputs(names, outputs), model


def mediapipe(model: Path, images: np.ndarray, tmp_path: Path) -> dict:
    if not MEDIAPIPE_PYTHON:
        if os.environ.get("CI"):
            pytest.fail("CI must provide VGGEDGE_MEDIAPIPE_PYTHON (a venv with MediaPipe 0.10; see .ci/run)")
        pytest.skip("set VGGEDGE_MEDIAPIPE_PYTHON to a Python with mediapipe 0.10 and numpy<2")
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run(
        [MEDIAPIPE_PYTHON, str(MEDIAPIPE_CHECK), str(model), str(tmp_path / "images.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["int8", "fp16", "fast"])  # uint8 and float input; the thinned GAP model
def test_mediapipe_image_classifier_answers_as_vggedge_does(all_runs, digits, tmp_path, recipe):
    """MediaPipe Tasks reads the metadata (RGB image; a float input normalized by mean 0, std 1, since the
    model takes raw pixels; labels.txt as the output's axis labels) and classifies as vggedge does."""
    from vggedge import Classifier

    model, images = all_runs / recipe / "model.tflite", digits.eval.images[:60]
    theirs = mediapipe(model, images, tmp_path)
    metadata = theirs["metadata"]
    assert metadata["identifier"] == "M001" and metadata["min_parser_version"] == "1.0.0"
    assert metadata["input"]["color_space"] == 1 and metadata["input"]["content_type"] == 2  # RGB image
    float_input = TFLiteModel(model, threads=1).input["dtype"] == np.float32
    assert metadata["input"]["normalization"] == ({"mean": [0.0], "std": [1.0]} if float_input else None)
    assert metadata["output"]["files"] == [{"name": LABELS_FILE, "type": 2}]  # TENSOR_AXIS_LABELS
    ours = Classifier(model, threads=1)
    same = 0
    for image, answer in zip(images, theirs["answers"], strict=True):
        label, score = ours.predict(image, top=1)[0]
        top = answer[0]
        assert top["name"] == ours.label(top["index"])  # the names come from the model itself
        if top["name"] == label:
            same += 1
            assert abs(top["score"] - score) < 0.02
    # MediaPipe's TFLite build has its own kernels: a near tie may flip (the runtimes test allows the same).
    assert same >= 0.98 * len(images), f"{recipe}: MediaPipe agreed with vggedge on {same} of {len(images)} images"


@pytest.mark.slow
def test_mediapipe_reads_a_sigmoid_models_positive_class(form_runs, digits, tmp_path):
    from vggedge import Classifier

    model = form_runs["sequential_autonamed"] / "int8" / "model.tflite"
    images = digits.eval.images[:30]
    theirs = mediapipe(model, images, tmp_path)
    ours = Classifier(model, threads=1)
    positive = ours.labels[1]
    for image, answer in zip(images, theirs["answers"], strict=True):
        assert [c["name"] for c in answer] == [positive]
        assert abs(answer[0]["score"] - float(ours.scores(image)[1])) < 0.02
