"""The format seam: a model is known by its content, `load` opens TFLite and ONNX with one interface, and every
device-side entry (Classifier, predict, bench, the bench server) takes an ONNX file as it takes a TFLite one."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vggedge.core.errors import DeviceError, UserError
from vggedge.core.formats import ONNX, OPENVINO, TFLITE, format_of

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def twins(tmp_path_factory, tflite_bytes):  # noqa: ANN001, ANN201
    """The same small untrained VGG as float32 TFLite and as ONNX (labels and resize in its metadata), and images."""
    from vggedge.export.convert import convert
    from vggedge.export.onnx import keras_to_onnx
    from vggedge.models.vgg import VGGSpec, build_vgg16

    folder = tmp_path_factory.mktemp("twins")
    spec = VGGSpec(input_size=32, classes=3, width=1 / 16, dense_units=16, preprocess="unit")
    model = build_vgg16(spec, name="twin")
    (folder / "model.tflite").write_bytes(convert(model, "float32"))
    properties = {"labels": "ant\nbee\nwasp", "resize": "letterbox"}
    keras_to_onnx(model, folder / "model.onnx", properties)
    if importlib.util.find_spec("openvino") is not None:
        from vggedge.core.quantization import Quantization
        from vggedge.export.formats import write_openvino

        write_openvino(model, folder / "model.xml", Quantization.FLOAT32, None, properties)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    return folder, images


def test_a_model_is_known_by_its_content_not_its_name(twins, tmp_path):
    folder, _ = twins
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes((folder / "model.onnx").read_bytes())
    (tmp_path / "model.onnx").write_bytes((folder / "model.tflite").read_bytes())
    assert format_of(renamed) is ONNX and format_of(tmp_path / "model.onnx") is TFLITE
    (tmp_path / "notes.onnx").write_text("# not a model\n")
    with pytest.raises(DeviceError, match=r"notes.onnx is not a model vggedge runs: it is none of a TFLite"):
        format_of(tmp_path / "notes.onnx")
    with pytest.raises(DeviceError, match="is a folder"):
        format_of(tmp_path)


def test_load_gives_one_interface_and_the_same_answers_for_both_formats(twins):
    from vggedge.device.models import load

    folder, images = twins
    tflite, onnx = load(folder / "model.tflite", threads=1), load(folder / "model.onnx", threads=1)
    assert (tflite.model_format, onnx.model_format) == (TFLITE, ONNX)
    assert onnx.runtime.name == "onnxruntime" and onnx.threads == 1 and tflite.runtime.name != "onnxruntime"
    assert onnx.input_size == tflite.input_size == 32 and onnx.classes_out == tflite.classes_out == 3
    first, second = tflite.predict(images), onnx.predict(images)
    assert np.abs(first - second).max() <= 1e-4 * max(np.abs(first).max(), 1e-6)
    onnx.set_input(images[0])
    onnx.invoke_once()
    assert np.allclose(onnx.read_output()[0], second[0])
    assert onnx.labels_inside() == ["ant", "bee", "wasp"] and onnx.resize_inside() == "letterbox"
    assert tflite.labels_inside() is None


def test_a_runtime_that_cannot_run_the_format_is_one_line(twins):
    from vggedge.device.models import load

    folder, _ = twins
    with pytest.raises(DeviceError, match=r"is an ONNX model, which ai-edge-litert does not run: use onnxruntime"):
        load(folder / "model.onnx", runtime="ai-edge-litert")


def cpu_while_idle(run) -> float:  # noqa: ANN001
    """CPU seconds this process used in the 50 ms after each of ten runs of ``run``."""
    import time

    used = 0.0
    for _ in range(10):
        run()
        before = time.process_time()
        time.sleep(0.05)
        used += time.process_time() - before
    return used


@pytest.mark.parametrize("name", ["model.tflite", "model.onnx", "model.xml"])
def test_a_models_idle_threads_sleep_instead_of_spinning(twins, name):
    """Between two runs a loaded model uses no CPU to speak of, whatever its runtime: ``bench`` times models
    interleaved, and on the board the camera loop and the user's own code need those cores. ONNX Runtime's pool
    threads spin by default (a session built the same way but spinning is the control: the check can see it)."""
    import onnxruntime

    from vggedge.device.models import load
    from vggedge.device.onnx_model import session_options

    folder, images = twins
    if not (folder / name).exists():
        pytest.skip("openvino is not installed")
    ours = load(folder / name, threads=2)
    idle_ours = cpu_while_idle(lambda: ours.predict(images[:1]))
    assert idle_ours < 0.05, idle_ours  # 0.5 s of sleeping: a tenth of it at most
    if name == "model.onnx":
        assert ours.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
        spinning_options = session_options(2)
        spinning_options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        spinning = onnxruntime.InferenceSession(str(folder / name), spinning_options)
        feed = {spinning.get_inputs()[0].name: images[:1].astype(np.float32)}
        idle_spinning = cpu_while_idle(lambda: spinning.run(None, feed))
        assert idle_spinning > 2 * idle_ours + 0.01, (idle_spinning, idle_ours)


def test_classifier_and_predict_read_an_onnx_models_names_and_resize(twins, cli):
    from vggedge import Classifier

    folder, images = twins
    onnx, tflite = Classifier(folder / "model.onnx"), Classifier(folder / "model.tflite", labels=["ant", "bee", "wasp"])
    assert onnx.labels == ["ant", "bee", "wasp"] and onnx.labels_source == "the model's metadata"
    assert onnx.resize == "letterbox" and tflite.resize == "stretch"
    assert [onnx.predict(x, top=1)[0][0] for x in images] == [tflite.predict(x, top=1)[0][0] for x in images]
    from PIL import Image

    picture = folder / "picture.png"
    Image.fromarray(images[0]).save(picture)
    done = cli("predict", folder / "model.onnx", picture, "--top", "1")
    assert done.code == 0, done.err
    assert done.out.split(":")[1].split()[0] == onnx.predict(picture, top=1)[0][0]


def test_bench_finds_every_artifact_of_a_run_folder_and_names_each(twins, tmp_path):
    from vggedge.device.bench import find_models

    folder, _ = twins
    run = tmp_path / "run" / "int8"
    run.mkdir(parents=True)
    for name in ("model.tflite", "model.onnx"):
        (run / name).write_bytes((folder / name).read_bytes())
    assert [name for name, _ in find_models([tmp_path / "run"])] == ["int8", "int8-onnx"]
    assert [name for name, _ in find_models([run])] == ["int8", "int8-onnx"]


def test_the_bench_server_times_an_onnx_model(twins, tmp_path):
    from helpers import Running

    folder, _ = twins
    server = Running(tmp_path / "token", runs=3, warmup=1)
    try:
        status, answer = server.request("POST", "/time", (folder / "model.onnx").read_bytes())
        assert status == 200 and answer["latency_ms"]["p50"] > 0, answer
        assert answer["environment"]["runtime"] is not None
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("asked", "chosen"),
    [(None, ["tflite"]), ("tflite", ["tflite"]), ("onnx", ["tflite", "onnx"]), (["ONNX", "tflite"], ["tflite", "onnx"]),
     ("all", ["tflite", "onnx", *(["openvino"] if importlib.util.find_spec("openvino") else [])])],
)  # fmt: skip
def test_formats_asked_are_resolved_tflite_first(asked, chosen):
    from vggedge.export.formats import resolve_formats

    assert resolve_formats(asked) == chosen


def test_an_unknown_format_is_one_line_before_any_work(tmp_path):
    import vggedge

    with pytest.raises(UserError, match=r"--formats: unknown model format 'onyx': choose from tflite, onnx, openvino"):
        vggedge.optimize("sample", "int8", formats="tflite,onyx", out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_openvino_ir_is_a_third_format_with_the_same_interface_and_answers(twins, tmp_path):
    pytest.importorskip("openvino")
    from vggedge import Classifier
    from vggedge.device.models import load

    folder, images = twins
    assert format_of(folder / "model.xml") is OPENVINO
    ir, tflite = load(folder / "model.xml", threads=1), load(folder / "model.tflite", threads=1)
    assert ir.runtime.name == "openvino" and ir.input_size == 32 and ir.classes_out == 3
    first, second = tflite.predict(images), ir.predict(images)
    assert np.abs(first - second).max() <= 1e-4 * max(np.abs(first).max(), 1e-6)
    classifier = Classifier(folder / "model.xml")
    assert classifier.labels == ["ant", "bee", "wasp"] and classifier.resize == "letterbox"
    (tmp_path / "model.xml").write_bytes((folder / "model.xml").read_bytes())  # its weights left behind
    with pytest.raises(DeviceError, match=r"an OpenVINO IR without its weights: model.bin is not beside it"):
        load(tmp_path / "model.xml")


def test_the_bench_server_refuses_an_ir_it_cannot_have_whole_in_one_line(twins, tmp_path):
    """An IR is two files and a request carries one: the XML alone is answered with why, never timed half."""
    pytest.importorskip("openvino")
    from helpers import Running

    folder, _ = twins
    server = Running(tmp_path / "token", runs=3, warmup=1)
    try:
        status, answer = server.request("POST", "/time", (folder / "model.xml").read_bytes())
        assert status == 400 and "an OpenVINO IR is 2 files and a request carries one" in answer["error"], answer
        status, answer = server.request("POST", "/time", (folder / "model.onnx").read_bytes())
        assert status == 200, answer  # and the server goes on
    finally:
        server.stop()


def test_a_format_whose_packages_are_missing_is_named_with_its_install_line(monkeypatch):
    from vggedge.export import formats

    monkeypatch.setattr(formats, "installed", lambda name: False)
    with pytest.raises(UserError, match=r"--formats openvino needs openvino onnx onnxruntime: pip install openvino"):
        formats.resolve_formats("openvino")
    assert formats.resolve_formats("all") == ["tflite"]  # all: only what is installed


def test_ctrl_c_after_openvino_models_freed_out_of_order_is_a_keyboard_interrupt(twins):
    """OpenVINO's CPU plugin gives the compiling thread a signal stack and puts the one it found back when the model
    is freed: two models freed first-to-last left the main thread on a freed stack, and Ctrl-C then crashed the
    process (a segmentation fault, seen when a test sent SIGINT after the OpenVINO tests). In a child process."""
    pytest.importorskip("openvino")
    import subprocess
    import sys

    folder, _ = twins
    code = f"""
import gc, os, signal, time
from vggedge.device.models import load
first = load({str(folder / "model.xml")!r}, threads=1)
second = load({str(folder / "model.xml")!r}, threads=1)
del first; gc.collect()
del second; gc.collect()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)
except KeyboardInterrupt:
    print("interrupted cleanly")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "interrupted cleanly" in done.stdout, (done.returncode, done.stderr[-1500:])
