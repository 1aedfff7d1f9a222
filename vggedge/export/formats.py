"""The workstation's side of the format seam: each format other than TFLite (which :mod:`vggedge.export.convert`
writes) has a writer that turns the recipe's stepped Keras model into its file, in the precision the recipe's
quantization maps to. Adding a format is one writer module and a line in :data:`WRITERS`."""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from vggedge.core.errors import UserError
from vggedge.core.formats import FORMATS, TFLITE, by_name
from vggedge.core.quantization import Quantization

# format name -> (module:function writing it, the packages it needs to be written and checked here)
WRITERS = {
    "onnx": ("vggedge.export.formats:write_onnx", ("onnx", "onnxruntime")),
    "openvino": ("vggedge.export.formats:write_openvino", ("openvino", "onnx", "onnxruntime")),
}


def precision(quantization: Quantization) -> str:
    """What a format other than TFLite holds for a recipe: full int8 for the calibrated modes, else float32 (its
    float16 and dynamic-range forms are TFLite's)."""
    return "int8" if quantization.calibrated else "float32"


def installed(name: str) -> bool:
    return all(importlib.util.find_spec(package) is not None for package in WRITERS.get(name, ("", ()))[1])


def resolve_formats(asked: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"tflite,onnx"``, a list of names, or ``"all"`` (every format whose packages are installed here) as format
    names, TFLite first and always; one line for an unknown format or one whose packages are missing."""
    names = asked.split(",") if isinstance(asked, str) else list(asked or [])
    names = [name.strip().lower() for name in names if name.strip()]
    if names == ["all"]:
        return [TFLITE.name, *(f.name for f in FORMATS if f.name in WRITERS and installed(f.name))]
    chosen = [TFLITE.name]
    for name in names:
        try:
            model_format = by_name(name)
        except Exception as error:  # DeviceError from the device side's table: the same line, as a UserError
            raise UserError(f"--formats: {error}") from None
        if model_format.name != TFLITE.name and not installed(model_format.name):
            packages = " ".join(WRITERS[model_format.name][1])
            raise UserError(f"--formats {model_format.name} needs {packages}: pip install {packages}")
        if model_format.name not in chosen:
            chosen.append(model_format.name)
    return chosen


def with_format_of(runtime: str, formats: list[str]) -> list[str]:
    """``formats`` with the one ``runtime`` runs added (auto's ``--runtime``: the format it timed is written too)."""
    from vggedge.core.formats import runtime_named

    name = runtime_named(runtime)[1].name
    return formats if name in formats else [*formats, name]


def write(name: str, model: object, path: Path, quantization: Quantization, calibration: np.ndarray | None,
          properties: dict[str, str], float_layers: tuple[str, ...] = ()) -> str:  # fmt: skip
    """Write ``model`` as format ``name`` at ``path`` (``float_layers``: Keras layers an int8 file keeps in float, as
    the TFLite file of the same recipe does); returns the precision written."""
    module_name, function = WRITERS[name][0].split(":")
    writer = getattr(importlib.import_module(module_name), function)
    writer(model, path, quantization, calibration, properties, float_layers)
    return precision(quantization)


def write_onnx(model: object, path: Path, quantization: Quantization, calibration: np.ndarray | None,
               properties: dict[str, str], float_layers: tuple[str, ...] = ()) -> None:  # fmt: skip
    """ONNX: the graph written layer by layer (:mod:`vggedge.export.onnx`), QDQ int8 from ``calibration`` when the
    recipe's quantization is calibrated, ``float_layers`` left float."""
    from vggedge.export.onnx import keras_to_onnx, quantize_onnx

    if precision(quantization) != "int8":
        keras_to_onnx(model, path, properties)
        return
    if calibration is None:
        raise ValueError("int8 ONNX needs calibration images")
    with tempfile.TemporaryDirectory(prefix="vggedge-onnx-", dir=Path(path).parent) as folder:
        float_path = Path(folder) / "float.onnx"
        keras_to_onnx(model, float_path, properties)
        quantize_onnx(float_path, Path(path), calibration, tuple(float_layers))


def write_openvino(model: object, path: Path, quantization: Quantization, calibration: np.ndarray | None,
                   properties: dict[str, str], float_layers: tuple[str, ...] = ()) -> None:  # fmt: skip
    """OpenVINO IR (``model.xml`` + ``model.bin``): the ONNX graph above (its QDQ int8 for a calibrated recipe, which
    OpenVINO runs with int8 kernels) read by OpenVINO's converter, the weights kept float32, the metadata in its
    ``rt_info`` under ``vggedge``."""
    import openvino

    written = Path(path).with_name("model.onnx")  # this run's ONNX file, when it wrote one first: the same graph
    with tempfile.TemporaryDirectory(prefix="vggedge-openvino-", dir=Path(path).parent) as folder:
        onnx_path = written if written.is_file() else Path(folder) / "model.onnx"
        if onnx_path != written:
            write_onnx(model, onnx_path, quantization, calibration, properties, float_layers)
        converted = openvino.convert_model(str(onnx_path))
    for key, value in properties.items():
        converted.set_rt_info(value, ["vggedge", key])
    openvino.save_model(converted, str(path), compress_to_fp16=False)
