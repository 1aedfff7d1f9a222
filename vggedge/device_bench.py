"""``vggedge bench`` on a device: benchmark a TFLite file with the light runtime and write a report.

Runs with numpy, pillow, rich and ai-edge-litert or tflite-runtime only: this module and
everything it imports must never import TensorFlow (a test runs it where TensorFlow cannot be
imported). When the model sits in a run folder written by ``optimize``, the report reuses that
run's recipe, model and baseline, and the baseline's predictions give an agreement figure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from pathlib import Path

import numpy as np

from vggedge import defaults
from vggedge.atomic import write_text
from vggedge.benchmark import measure_tflite
from vggedge.data import load_all
from vggedge.environment import describe_environment, device_model, emulation
from vggedge.errors import UserError
from vggedge.metrics import top1_classes
from vggedge.report import BaselineFigures, DatasetSection, ModelSection, RecipeSection, Report
from vggedge.runtime import TFLiteModel, check_tflite_file, find_runtime


@dataclasses.dataclass
class BenchOptions:
    model: Path
    data: Path | None = None
    threads: int | None = None
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP
    out: Path | None = None
    runtime: str | None = None
    progress: bool = True


def device_slug() -> str:
    import platform

    name = device_model() or platform.node() or "device"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:48] or "device"


def read_run_folder(folder: Path) -> tuple[Report | None, dict | None]:
    """The optimize report and baseline predictions beside the model, when they are there and readable."""
    report = predictions = None
    with contextlib.suppress(OSError, ValueError, TypeError):
        report = Report.load(folder / "report.json")
    with contextlib.suppress(OSError, ValueError):
        predictions = json.loads((folder / "baseline_predictions.json").read_text())
    return report, predictions


def agreement_with_baseline(keys: list[str], scores: np.ndarray, predictions: dict | None) -> float | None:
    if not predictions:
        return None
    wanted = dict(
        zip(predictions.get("keys", []), predictions.get("top1", []), strict=False)
    )  # a file: trust no length
    predicted = top1_classes(scores)  # argmax of a 1-unit sigmoid output alone would always be 0
    matched = [(p, wanted[k]) for k, p in zip(keys, predicted, strict=True) if k in wanted]
    if not matched:
        return None
    return float(np.mean([a == b for a, b in matched]))


def bench(options: BenchOptions) -> Path:
    check_tflite_file(options.model)
    runtime = find_runtime(options.runtime)
    probe = TFLiteModel(options.model, threads=options.threads, runtime=runtime)
    size = probe.input_size
    classes = int(np.prod(probe.output["shape"][1:]))
    source_report, predictions = read_run_folder(options.model.parent)
    notes = []
    if options.data is not None:
        class_names, split, skipped = load_all(options.data, size, progress=options.progress)
        model_classes = 2 if classes == 1 else classes
        if len(class_names) != model_classes:
            raise UserError(
                f"the data has {len(class_names)} classes but {options.model} outputs {model_classes}: "
                "use the evaluation folder written by `vggedge optimize` or data with one subfolder per model class"
            )
        if predictions and set(predictions.get("keys", [])) & set(split.keys):
            # The run folder names its evaluation images: benchmark on exactly those, as optimize did.
            wanted = set(predictions["keys"])
            chosen = [i for i, key in enumerate(split.keys) if key in wanted]
            notes.append(
                f"evaluated the run's {len(chosen)} evaluation images found among {len(split.keys)} in {options.data}"
            )
            split = type(split)(split.images[chosen], split.labels[chosen], [split.keys[i] for i in chosen])
        images, labels, keys = split.images, split.labels, split.keys
        dataset = DatasetSection(
            name=Path(options.data).name,
            classes=len(class_names),
            eval_samples=len(keys),
            skipped=skipped,
            eval_source=str(options.data),
        )
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(1, size, size, 3), dtype=np.uint8)
        labels, keys = None, []
        dataset = DatasetSection()
        notes.append("accuracy not measured: no --data")
    del probe
    runs, warmup = options.runs, options.warmup
    emulated = emulation()
    if emulated:
        # An emulator's timings describe the emulator, not any device: accuracy only, latency null.
        runs = warmup = 0
        notes.append(f"latency not measured: emulated ({emulated})")
    measured = measure_tflite(options.model, images, labels, options.threads, runs, warmup, options.progress, runtime)
    result = measured.result
    result.agreement = agreement_with_baseline(keys, measured.scores, predictions) if labels is not None else None
    if source_report:
        recipe, model, baseline = source_report.recipe, source_report.model, source_report.baseline
        result.flops = source_report.result.flops  # a property of the graph, not of the device
    else:
        recipe = RecipeSection(name=options.model.stem)
        model = ModelSection(source=str(options.model), input_shape=[size, size, 3], classes=classes)
        baseline = BaselineFigures()
        notes.append("no optimize report beside the model: ratios against the baseline are not available")
    environment = describe_environment(runtime, measured.threads)
    report = Report(recipe, model, dataset, environment, baseline, result, notes, kind="device")
    out = options.out or options.model.parent / f"bench-{device_slug()}"
    if labels is not None:
        write_predictions(out / "predictions.json", keys, measured.scores)
    return report.write(out)


def write_predictions(path: Path, keys: list[str], scores: np.ndarray) -> None:
    """This device's top-1 per image key, so runs on two devices (or runtimes) can be compared image by image."""
    write_text(path, json.dumps({"keys": keys, "top1": [int(c) for c in top1_classes(scores)]}) + "\n")
