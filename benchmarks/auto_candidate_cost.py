"""Where one ``--recipe auto`` candidate's time goes on a full-size VGG16 at 224x224: refit, conversion, scoring,
timing, each measured on the same shape, with the calibration sizes the search could use.

    python benchmarks/auto_candidate_cost.py --model FILE.keras --data FOLDER [--preprocess caffe]

One candidate of the search is: cut a block (``thin_model``), refit the layers after the cut by least squares on
the reconstruction images (``reconstruct``), convert to int8 calibrated on the calibration images, score the
search images with the TFLite interpreter, and time the candidate side by side with the current model. This
script does each stage once on a block-3 cut of the given model and prints the seconds of each, so the search's
per-candidate cost can be cut where it is spent. Absolute seconds are this CPU's and this moment's only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(figures: dict, name: str, call):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    value = call()
    figures[name] = round(time.perf_counter() - started, 1)
    print(f"{name}: {figures[name]} s", flush=True)
    return value


def main() -> None:
    from vggedge.auto.rules import LEVELS
    from vggedge.core.data import load_dataset
    from vggedge.core.quantization import Quantization
    from vggedge.device.runtime import TFLiteModel
    from vggedge.export.convert import convert
    from vggedge.models.anatomy import find_anatomy
    from vggedge.models.loading import load_model_file
    from vggedge.steps.filters import thin_model
    from vggedge.steps.reconstruct import STEP_REFIT_IMAGES, first_images, reconstruct

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--preprocess", default=None)
    parser.add_argument("--search-images", type=int, default=100)
    args = parser.parse_args()
    figures: dict = {}
    baseline = timed(figures, "load", lambda: load_model_file(args.model, args.preprocess)).model
    size = int(baseline.input_shape[1])
    dataset = timed(figures, "data", lambda: load_dataset(args.data, size, None, 100, progress=False))
    calibration, search = dataset.calibration.images, dataset.eval.images[: args.search_images]
    anatomy = find_anatomy(baseline)
    ratios = {name: 1 - LEVELS[2] for name in anatomy.blocks[2]}
    kept: dict = {}
    thin, _ = timed(figures, "thin_model", lambda: thin_model(baseline, ratios, kept=kept))
    tune = first_images(dataset.train, STEP_REFIT_IMAGES)
    timed(figures, f"reconstruct ({len(tune)} images)", lambda: reconstruct(baseline, thin, kept, tune))
    for count in (100, 32, 16):
        flatbuffer = timed(
            figures,
            f"convert int8 ({count} calibration images)",
            lambda c=count: convert(thin, Quantization.INT8, calibration[:c]),
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidate.tflite"
        path.write_bytes(flatbuffer)
        model = TFLiteModel(path, threads=2)
        timed(figures, f"score {len(search)} search images (TFLite)", lambda: [model.predict_one(i) for i in search])
        timed(figures, "time 30 runs", lambda: [model.invoke_once() for _ in range(30)])
    timed(
        figures,
        f"score {len(search)} search images (Keras float)",
        lambda: thin.predict(search.astype(np.float32), batch_size=16, verbose=0),
    )
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
