"""The peer toolchains beside vggedge's recipes in the full-size benchmark: OpenVINO (+ NNCF) and ONNX Runtime.

Each conversion runs in its own child process, so its wall time and peak memory are its own (the
same treatment the recipes get), from the same VGG16 (preprocessing baked in, raw pixels in): OpenVINO from
a SavedModel, ONNX written from the Keras model (``onnx_export``). A peer that is not installed, or whose
conversion fails or outgrows the memory cap, is a row that says why. Install them with ``pip install -e ".[peers]"``.

Latency is measured by ``fullsize.py`` in the same interleaved loop as the TFLite models, through
the small ``Runner`` objects made here (``set_input`` / ``invoke_once``, as ``TFLiteModel``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from measure import run_measured

MEMORY_CAP_GB = 12.0  # a conversion above this is stopped and reported (the 24 GB machine must survive)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_child(code: str, cwd: Path) -> dict:
    """Run ``code`` in a child Python; its wall time, peak RSS (capped) and its last stdout line (JSON)."""
    run = run_measured([sys.executable, "-c", code], cwd, cap_gb=MEMORY_CAP_GB)
    row = {"wall_s": run.wall_s, "peak_rss_gb": run.peak_rss_gb}
    if run.capped:
        row["status"] = f"not measured: conversion passed {MEMORY_CAP_GB:.0f} GB after {run.wall_s} s, stopped"
    elif run.exit_code != 0:
        row["status"] = "failed: " + run.last_error_line()
    else:
        row.update(json.loads(run.stdout.strip().splitlines()[-1]))
        row.setdefault("status", "ok")
    return row


def save_savedmodel(weights: str | None, folder: Path) -> None:
    """The VGG16 every peer converts, as vggedge loads it (preprocessing baked in)."""
    code = f"""
from vggedge.backend.keras_env import tf
from vggedge.models.loading import load_imagenet_vgg16
tf.saved_model.save(load_imagenet_vgg16({weights!r}).model, {str(folder)!r})
print("{{}}")
"""
    row = run_child(code, Path.cwd())
    if row.get("status") != "ok":
        raise RuntimeError(f"cannot write the peers' SavedModel: {row['status']}")


def openvino_rows(savedmodel: Path, work: Path, calibration: int) -> list[dict]:
    """OpenVINO float32 (convert_model) and int8 (NNCF post-training quantization)."""
    if not installed("openvino"):
        return [{"recipe": "OpenVINO fp32 (peer)", "status": "not measured: openvino not installed (extra 'peers')"}]
    fp32_xml, int8_xml = work / "openvino-fp32.xml", work / "openvino-int8.xml"
    convert = f"""
import json, time
import openvino as ov
started = time.perf_counter()
model = ov.convert_model({str(savedmodel)!r})
ov.save_model(model, {str(fp32_xml)!r}, compress_to_fp16=False)
print(json.dumps({{"convert_s": round(time.perf_counter() - started, 1)}}))
"""
    fp32 = {"recipe": "OpenVINO fp32 (peer)", **run_child(convert, work)}
    rows = [fp32]
    if fp32["status"] != "ok":
        return rows
    fp32["model"] = str(fp32_xml)
    fp32["size_mb"] = round((fp32_xml.with_suffix(".bin")).stat().st_size / 1e6, 2)
    if not installed("nncf"):
        rows.append({"recipe": "OpenVINO int8 (NNCF, peer)", "status": "not measured: nncf not installed"})
        return rows
    quantize = f"""
import json, time
import numpy as np
import nncf, openvino as ov
started = time.perf_counter()
model = ov.Core().read_model({str(fp32_xml)!r})
images = np.random.default_rng(0).integers(0, 256, size=({calibration}, 1, 224, 224, 3)).astype(np.float32)
quantized = nncf.quantize(model, nncf.Dataset(list(images)), subset_size={calibration})
ov.save_model(quantized, {str(int8_xml)!r})
print(json.dumps({{"convert_s": round(time.perf_counter() - started, 1)}}))
"""
    int8 = {"recipe": "OpenVINO int8 (NNCF, peer)", **run_child(quantize, work)}
    if int8["status"] == "ok":
        int8["model"] = str(int8_xml)
        int8["size_mb"] = round(int8_xml.with_suffix(".bin").stat().st_size / 1e6, 2)
    rows.append(int8)
    return rows


def onnx_rows(weights: str | None, work: Path, calibration: int) -> list[dict]:
    """ONNX Runtime float32 (the Keras VGG16 written as ONNX by ``vggedge.export.onnx``) and int8 (ONNX Runtime's static
    QDQ quantization of it). The export runs in a child like every conversion and is compared with the Keras
    model on two images before it is timed; tf2onnx could not export the full model here (``vggedge.export.onnx``)."""
    if not (installed("onnx") and installed("onnxruntime")):
        return [{"recipe": "ONNX Runtime fp32 (peer)", "status": "not measured: onnx/onnxruntime not installed"}]
    fp32_path, int8_path = work / "model.onnx", work / "model-int8.onnx"
    export = f"""
import json, sys, time
import numpy as np
sys.path.insert(0, {str(Path(__file__).parent)!r})
from vggedge.export.onnx import keras_to_onnx, largest_difference
from vggedge.models.loading import load_imagenet_vgg16
model = load_imagenet_vgg16({weights!r}).model
started = time.perf_counter()
keras_to_onnx(model, {str(fp32_path)!r})
convert_s = round(time.perf_counter() - started, 1)
images = np.random.default_rng(0).integers(0, 256, size=(2, 224, 224, 3)).astype(np.float32)
difference = largest_difference({str(fp32_path)!r}, model, images)
status = "ok" if difference <= 1e-3 else f"failed: ONNX scores differ from Keras by {{difference:.2g}} of the largest"
print(json.dumps({{"convert_s": convert_s, "max_rel_diff_vs_keras": float(f"{{difference:.2g}}"), "status": status}}))
"""
    fp32 = {"recipe": "ONNX Runtime fp32 (peer)", **run_child(export, work)}
    rows = [fp32]
    if fp32["status"] != "ok":
        rows.append({"recipe": "ONNX Runtime int8 (peer)", "status": "not measured: no ONNX export"})
        return rows
    fp32["model"] = str(fp32_path)
    fp32["size_mb"] = round(fp32_path.stat().st_size / 1e6, 2)
    quantize = f"""
import json, time
import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
name = ort.InferenceSession({str(fp32_path)!r}).get_inputs()[0].name
images = np.random.default_rng(0).integers(0, 256, size=({calibration}, 1, 224, 224, 3)).astype(np.float32)
class Reader(CalibrationDataReader):
    def __init__(self): self.items = iter([{{name: image}} for image in images])
    def get_next(self): return next(self.items, None)
started = time.perf_counter()
quantize_static({str(fp32_path)!r}, {str(int8_path)!r}, Reader(), per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
print(json.dumps({{"convert_s": round(time.perf_counter() - started, 1)}}))
"""
    int8 = {"recipe": "ONNX Runtime int8 (peer)", **run_child(quantize, work)}
    if int8["status"] == "ok":
        int8["model"] = str(int8_path)
        int8["size_mb"] = round(int8_path.stat().st_size / 1e6, 2)
    rows.append(int8)
    return rows


class Runner:
    """One peer model compiled for ``threads`` threads, driven like ``TFLiteModel`` (set_input, invoke_once)."""

    def __init__(self, path: Path, threads: int) -> None:
        path = Path(path)
        if path.suffix == ".xml":
            import openvino as ov

            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
            if "fp32" in path.name:
                config["INFERENCE_PRECISION_HINT"] = "f32"  # else bf16 on CPUs that have it: not float32
            self._request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
            self._run = lambda x: self._request.infer([x])
        else:
            import onnxruntime as ort

            from vggedge.device.onnx_model import session_options

            # The same options as vggedge's own ONNX files: pool threads that spinned between runs slowed every model
            # timed after them (vggedge.device.onnx_model.session_options)
            session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            self._run = lambda x: session.run(None, {name: x})
        self._input = None

    def set_input(self, pixels: np.ndarray) -> None:
        self._input = pixels[None].astype(np.float32)

    def invoke_once(self) -> None:
        self._run(self._input)
