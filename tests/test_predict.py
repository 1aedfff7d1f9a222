"""Using the model: class names in every run folder (labels.txt), a model's own labels when it carries TFLite
metadata, `vggedge predict` on images and folders, the `Classifier` API, the camera loop."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from no_tensorflow import ASSERT_NO_TENSORFLOW, BLOCK_TENSORFLOW
from PIL import Image
from test_bench import NO_TENSORFLOW

from helpers import files_under
from vggedge.core.labels import LABELS_FILE, find_labels, labels_in_model
from vggedge.device.runtime import TFLiteModel

DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def small_tflite():
    """(plain flatbuffer, the same with a labels file packed as TFLite metadata packs its associated files: a zip
    archive appended to the flatbuffer) of a small untrained VGG."""
    from vggedge.export.convert import convert
    from vggedge.models.vgg import VGGSpec, build_vgg16

    spec = VGGSpec(input_size=32, classes=10, width=1 / 16, dense_units=32, preprocess="unit")
    plain = convert(build_vgg16(spec, name="labelled"), "float32")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("labels.txt", "".join(f"class {c}\n" for c in "abcdefghij"))
    return plain, plain + archive.getvalue()


def eval_images(digits, count: int = 60) -> tuple[np.ndarray, list[int]]:
    return digits.eval.images[:count], [int(x) for x in digits.eval.labels[:count]]


@pytest.mark.slow
def test_every_run_writes_its_labels(all_runs):
    folders = sorted(p.parent for p in all_runs.glob("*/model.tflite"))
    assert len(folders) >= 5
    for folder in folders:
        assert (folder / LABELS_FILE).read_text().split() == DIGITS


def test_labels_packed_in_a_model_are_read_and_change_no_output(small_tflite, digits, tmp_path):
    plain, labelled = small_tflite
    (tmp_path / "plain.tflite").write_bytes(plain)
    (tmp_path / "labelled.tflite").write_bytes(labelled)
    images, _ = eval_images(digits, 20)
    outputs = [TFLiteModel(tmp_path / f"{name}.tflite", threads=1).predict(images) for name in ("plain", "labelled")]
    assert np.array_equal(outputs[0], outputs[1])
    assert labels_in_model(tmp_path / "plain.tflite") is None
    assert labels_in_model(tmp_path / "labelled.tflite") == [f"class {c}" for c in "abcdefghij"]


def test_labels_are_found_in_the_model_then_beside_it(small_tflite, tmp_path):
    plain, labelled = small_tflite
    (tmp_path / "m.tflite").write_bytes(plain)
    assert find_labels(tmp_path / "m.tflite", 10)[0] is None
    (tmp_path / LABELS_FILE).write_text("".join(f"{i}\n" for i in range(10)))
    assert find_labels(tmp_path / "m.tflite", 10) == (DIGITS, str(tmp_path / LABELS_FILE))
    assert "names 10 classes but the model has 3" in find_labels(tmp_path / "m.tflite", 3)[1]
    (tmp_path / "m.tflite").write_bytes(labelled)
    assert find_labels(tmp_path / "m.tflite", 10)[1] == "the model's metadata"
    (tmp_path / LABELS_FILE).write_text("cat\ndog\n")
    assert find_labels(tmp_path / "m.tflite", 2) == (["cat", "dog"], str(tmp_path / LABELS_FILE))


def run_without_tensorflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


@pytest.mark.slow
def test_predict_a_folder_without_tensorflow(all_runs, digits, tmp_path):
    images, labels = eval_images(digits, 30)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    model = all_runs / "int8" / "model.tflite"
    done = run_without_tensorflow("predict", model, tmp_path, "--json", "--top", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["labels"] == "the model's metadata" and answer["threads"] == 1
    assert len(answer["images"]) == 30 and answer["latency_ms"]["p50"] > 0
    expected = TFLiteModel(model, threads=1).predict(images).argmax(axis=1)
    got = [int(item["top"][0]["label"]) for item in answer["images"]]
    assert got == expected.tolist() and all(len(item["top"]) == 2 for item in answer["images"])
    text = run_without_tensorflow("predict", model, tmp_path / "00.png", tmp_path / "01.png")
    assert text.returncode == 0 and text.stdout.count(".png: ") == 2 and "2 images, p50" in text.stdout


def test_predict_shows_indices_once_when_a_model_has_no_labels(small_tflite, digits, tmp_path, cli):
    (tmp_path / "m.tflite").write_bytes(small_tflite[0])
    Image.fromarray(digits.eval.images[0]).save(tmp_path / "a.png")
    done = cli("predict", tmp_path / "m.tflite", tmp_path / "a.png", "--top", "1")
    assert done.code == 0 and done.err.count("classes are shown by index") == 1
    assert done.out.splitlines()[0].split(": ")[1].split()[0].isdigit()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING.png"], "does not exist"),
        (["EMPTY"], "holds no images"),
        (["'nothing-*.jpg'"], "matches no file"),
        ([], "give images"),
        (["--camera", "x.png"], "give no images with it"),
        (["--camera"], "--camera needs Picamera2"),
    ],
)
def test_predict_refuses_bad_input_in_one_line(small_tflite, tmp_path, cli, args, message):
    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    (tmp_path / "empty").mkdir()
    args = [{"MISSING.png": str(tmp_path / "missing.png"), "EMPTY": str(tmp_path / "empty")}.get(a, a) for a in args]
    args = [str(tmp_path / "nothing-*.jpg") if a == "'nothing-*.jpg'" else a for a in args]
    done = cli("predict", tmp_path / "m.tflite", *args)
    assert done.code == 2 and message in done.err and "Traceback" not in done.err, done.err


def test_predict_refuses_a_model_it_cannot_use_in_one_line(tmp_path, cli):
    """Not a TFLite file, and a TFLite model whose input is not an image (a regression on 8 numbers): exit 2."""
    from vggedge.backend.keras_env import keras
    from vggedge.export.convert import convert

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    (tmp_path / "notes.tflite").write_text("not a model")
    regression = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    (tmp_path / "regression.tflite").write_bytes(convert(regression, "float32"))
    for name, message in (("notes", "is not a model vggedge runs"), ("regression", "is not an image classifier")):
        done = cli("predict", tmp_path / f"{name}.tflite", tmp_path / "a.png")
        assert done.code == 2 and message in done.err and "Traceback" not in done.err, done.err


def test_predict_refuses_a_file_that_is_not_an_image(small_tflite, tmp_path, cli):
    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    (tmp_path / "photo.png").write_bytes(b"\x89PNG but not really")
    done = cli("predict", tmp_path / "m.tflite", tmp_path / "photo.png")
    assert done.code == 2 and "photo.png: not an image Pillow recognises" in done.err, done.err
    assert "Traceback" not in done.err


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (RuntimeError("Failed to acquire camera: Device or resource busy"), "is another program using it?"),
        (IndexError("list index out of range"), "no camera found by Picamera2"),
    ],
)
def test_a_busy_or_absent_camera_is_one_line(small_tflite, tmp_path, cli, monkeypatch, failure, message):
    """Picamera2 installed, but its camera held by another program (RuntimeError) or not connected (IndexError)."""
    import types

    def refuse() -> None:
        raise failure

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=refuse))
    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    done = cli("predict", tmp_path / "m.tflite", "--camera")
    assert done.code == 2 and message in done.err and "Traceback" not in done.err, done.err
    assert len(done.err.strip().splitlines()) == 1


def test_classifier_api_takes_pil_paths_and_arrays_alike(small_tflite, digits, tmp_path):
    from vggedge import Classifier

    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    image = Image.fromarray(digits.eval.images[3]).resize((64, 48))  # not the model's size: resized by the rule
    image.save(tmp_path / "x.png")
    classifier = Classifier(tmp_path / "m.tflite", threads=1)
    answers = [
        classifier.predict(x, top=3) for x in (image, tmp_path / "x.png", str(tmp_path / "x.png"), np.asarray(image))
    ]
    assert all(answer == answers[0] for answer in answers) and len(answers[0]) == 3
    assert answers[0][0][0].startswith("class ") and answers[0][0][1] >= answers[0][1][1] >= answers[0][2][1]
    assert classifier.labels_source == "the model's metadata" and classifier.last_ms > 0


def test_classifier_api_imports_no_tensorflow(small_tflite, tmp_path):
    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    code = (
        BLOCK_TENSORFLOW
        + "from vggedge import Classifier\n"
        + "import numpy as np\n"
        + f"print(Classifier({str(tmp_path / 'm.tflite')!r}).predict(np.zeros((32, 32, 3), np.uint8), top=1)[0][0])\n"
        + ASSERT_NO_TENSORFLOW
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("class "), done.stderr[-2000:]


class FakePicamera2:
    """Picamera2's numpy channel order: its RGB888 arrives as B,G,R and its BGR888 as R,G,B (XRGB8888 adds a byte)."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.format, self.started, self.stopped = rgb, None, False, False

    def create_preview_configuration(self, main: dict) -> dict:
        return {"main": main}

    def configure(self, config: dict) -> None:
        self.format = config["main"]["format"]

    def start(self) -> None:
        self.started = True

    def capture_array(self) -> np.ndarray:
        return {"BGR888": self.rgb, "RGB888": self.rgb[..., ::-1]}[self.format].copy()

    def stop(self) -> None:
        self.stopped = True


def test_camera_frames_reach_the_model_in_rgb_order(small_tflite, tmp_path):
    from vggedge import Classifier
    from vggedge.device.camera import run_camera

    (tmp_path / "m.tflite").write_bytes(small_tflite[1])
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 255  # pure red: a swapped order would be pure blue
    seen = []

    class Recording(Classifier):
        def pixels(self, image):  # noqa: ANN001, ANN202
            seen.append(np.array(image))
            return super().pixels(image)

    camera = FakePicamera2(rgb)
    lines: list[str] = []
    count = run_camera(Recording(tmp_path / "m.tflite", threads=1), lines.append, lambda: camera, max_frames=5)
    assert count == 5 and camera.format == "BGR888" and camera.started and camera.stopped
    assert all(np.array_equal(frame, rgb) for frame in seen)
    assert lines and lines[-1].split()[0].startswith("class") and "frames/s" in lines[-1]


@pytest.mark.slow
def test_optimize_labels_for_a_model_without_data(cli, tiny_h5, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"digit {i}\n" for i in range(10)))
    done = cli("optimize", "--recipe", "fp16", "--model", tiny_h5, "--labels", names, "--out", tmp_path / "r", "-q")
    assert done.code == 0, done.err
    assert (tmp_path / "r" / "fp16" / LABELS_FILE).read_text() == names.read_text()
    from vggedge import Classifier

    assert Classifier(tmp_path / "r" / "fp16" / "model.tflite").labels == [f"digit {i}" for i in range(10)]
    names.write_text("a\nb\n")
    again = cli("optimize", "--recipe", "fp16", "--model", tiny_h5, "--labels", names, "--out", tmp_path / "s", "-q")
    assert again.code == 2 and "--labels names 2 classes but the model outputs 10" in again.err
    assert files_under(tmp_path / "s") == []
