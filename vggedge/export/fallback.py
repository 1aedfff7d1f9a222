"""Float fallback within the budget: the fewest layers kept in float that bring an int8 model back.

When int8 breaks a model, a user's way out is to keep the guilty layers in float; TensorFlow's converter has
no supported switch for it. Here the model is calibrated once, then quantized again as often as needed with
a deny-list of ops (:func:`vggedge.export.convert.quantize_calibrated`, 0.3 s on the 1/4-width VGG16), each try
checked on held-apart images (the calibration split: never evaluated on) against the Keras source:

- ``keep_float = "auto"``: when full int8 misses the check (agreement with the Keras source below
  ``--min-agreement``, or top-1 more than the budget below the source's on those images), the layers are
  reverted to float one at a time in the order of the per-layer error table (:mod:`vggedge.export.layer_error`:
  the layers that break first, then the rest by their own error), until the check passes or
  ``MAX_FLOAT_LAYERS`` are float. A model that passes as it is keeps every layer int8.
- ``keep_float = "block1,head"`` (selectors, comma-separated): exactly those layers in float.

The model still takes raw uint8 pixels and returns uint8 scores. What the float layers cost is recorded
against the same model with every layer int8: its size, and both models' latency timed interleaved.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.metrics import time_interleaved, top1_classes
from vggedge.core.selectors import split_selectors
from vggedge.device.models import load
from vggedge.export.convert import calibrate, op_outputs, quantize_calibrated
from vggedge.export.layer_error import layer_errors
from vggedge.models.anatomy import find_anatomy

MAX_FLOAT_LAYERS = 4
AUTO = "auto"


@dataclasses.dataclass
class Check:
    """Held-apart images, their labels (None: agreement only) and the bars a try must meet."""

    images: np.ndarray
    labels: np.ndarray | None
    max_drop_pts: float
    min_agreement: float


def selected_layers(model: keras.Model, keep_float: str) -> list[str]:
    """The conv/dense layers a comma-separated selector list names, in model order."""
    anatomy = find_anatomy(model)
    chosen = {name for part in split_selectors(keep_float) for name in anatomy.select(part)}
    return [layer.name for layer in model.layers if layer.name in chosen]


def convert_with_fallback(
    model: keras.Model, keep_float: str, calibration: np.ndarray, check: Check | None, scratch
) -> tuple[bytes, dict]:  # noqa: ANN001 - scratch: a folder or None
    """The int8 flatbuffer with the fewest float layers that pass ``check`` (or the named ones), and a record:
    which layers are float, each try's figures on the held-apart images."""
    calibrated = calibrate(model, calibration, scratch)
    if keep_float != AUTO:  # exactly the named layers; every layer int8 beside it, for what they cost
        layers = selected_layers(model, keep_float)
        chosen = quantize_calibrated(calibrated, op_outputs(calibrated, layers))
        all_int8 = quantize_calibrated(calibrated, op_outputs(calibrated, []))
        record = {"float_layers": layers, "tries": [{"float_layers": [], "size_bytes": len(all_int8)}]}
        if layers:
            record["latency_ms"] = latency_cost(chosen, all_int8, scratch)
        return chosen, record
    if check is None or not len(check.images):
        raise ValueError("keep_float = 'auto' needs held-apart images to check each try on")
    source = top1_classes(model.predict(check.images, verbose=0))
    tries: list[dict] = []

    def attempt(layers: list[str]) -> tuple[bytes, bool]:
        flatbuffer = quantize_calibrated(calibrated, op_outputs(calibrated, layers))
        figures = _figures(flatbuffer, check, source, scratch)
        tries.append({"float_layers": list(layers), **figures})
        passed = figures["agreement"] >= check.min_agreement and (
            figures["drop_pts"] is None or figures["drop_pts"] <= check.max_drop_pts
        )
        return flatbuffer, passed

    flatbuffer, passed = attempt([])
    all_int8, layers = flatbuffer, []
    if not passed:
        ranking = [row.layer for row in layer_errors(model, flatbuffer, check.images)]
        for layer in ranking[:MAX_FLOAT_LAYERS]:
            layers.append(layer)
            flatbuffer, passed = attempt(layers)
            if passed:
                break
    record = {"float_layers": layers, "passed": passed, "tries": tries, "checked_on": len(check.images)}
    if layers:
        record["latency_ms"] = latency_cost(flatbuffer, all_int8, scratch)
    return flatbuffer, record


LATENCY_SECONDS = 1.0  # interleaved timing of the kept model against every layer int8


def latency_cost(chosen: bytes, all_int8: bytes, scratch) -> dict:  # noqa: ANN001
    """What the float layers cost in time on this machine: both models' p50, timed interleaved (so a burst of
    load slows both alike), and their ratio."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        models = []
        for name, flatbuffer in (("chosen", chosen), ("all-int8", all_int8)):
            path = Path(folder) / f"{name}.tflite"
            path.write_bytes(flatbuffer)
            model = load(path)
            model.set_input(np.zeros((model.input_size, model.input_size, 3), dtype=np.uint8))
            models.append(model)
        kept, reference = time_interleaved([m.invoke_once for m in models], LATENCY_SECONDS, min_rounds=30)
    return {
        "with_float_layers": kept.p50,
        "all_int8": reference.p50,
        "ratio": round(kept.p50 / reference.p50, 3) if reference.p50 else None,
        "threads": models[0].threads,
    }


def _figures(flatbuffer: bytes, check: Check, source: np.ndarray, scratch) -> dict:  # noqa: ANN001
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        path = Path(folder) / "try.tflite"
        path.write_bytes(flatbuffer)
        predicted = top1_classes(load(path).predict(check.images))
    figures = {"agreement": round(float((predicted == source).mean()), 4), "size_bytes": len(flatbuffer)}
    if check.labels is not None:
        drop = float((source == check.labels).mean() - (predicted == check.labels).mean()) * 100
        figures["drop_pts"] = round(drop, 2)
    else:
        figures["drop_pts"] = None
    return figures


def fallback_note(record: dict, size_bytes: int, keep_float: str) -> str:
    """The report's note on the float layers: which, and what they cost in size and latency against every
    layer int8 (and how far that one was from the Keras source, when it was checked)."""
    tries, latency = record.get("tries") or [], record.get("latency_ms") or {}
    slower = (
        f" and {latency['ratio'] - 1:+.0%} latency ({latency['with_float_layers']:.3g} against "
        f"{latency['all_int8']:.3g} ms, timed interleaved at {latency['threads']} threads)"
        if latency.get("ratio")
        else ""
    )
    agreed = (
        f", which agreed with the Keras source on {tries[0]['agreement']:.0%} of the calibration images"
        if tries and "agreement" in tries[0]
        else ""
    )
    cost = ""
    if tries:
        cost = f": {size_bytes / tries[0]['size_bytes'] - 1:+.0%} size{slower} against every layer int8{agreed}"
    return f"kept in float: {', '.join(record['float_layers'])} (keep_float = {keep_float!r}){cost}"
