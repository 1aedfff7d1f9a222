"""``vggedge bench`` on a device: time one or several TFLite files at one or several thread counts, check the
board, and write a report per model × threads (plus one table and a recommendation when there are several).

Runs with numpy, pillow, rich and ai-edge-litert or tflite-runtime only: nothing here imports TensorFlow
(``tests/test_device_package.py`` imports the package where TensorFlow cannot be imported). When a model sits
in a run folder written by ``optimize``, its report reuses that run's recipe, model and baseline, and the
baseline's predictions give an agreement figure.

How it times, so that noise and heat hit every row alike: every interpreter (model × threads) is created and
warmed up first; then, model by model, a cool-down and a burst of runs at each thread count (the *burst*
p50: a cool board); then ``sustain_s`` of interleaved load on all of them, untimed, and ``runs`` interleaved
rounds, timed (the *sustained* p50, the report's ``latency_ms``: what an application meets once the board is
warm). The board is read before and after (``vggedge.device.check``): a figure taken while it throttled,
swapped or ran a power-saving governor carries a warning with the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vggedge.core import defaults
from vggedge.core.atomic import write_text
from vggedge.core.data import load_all
from vggedge.core.errors import UserError
from vggedge.core.formats import FORMATS, TFLITE, format_of, model_bytes
from vggedge.core.metrics import accuracy_figures, latency_summary, top1_classes
from vggedge.core.progress import log_line, track
from vggedge.core.report import (
    STATUS_NOT_VERIFIED,
    STATUS_OK,
    STATUS_OVER_BUDGET,
    BaselineFigures,
    DatasetSection,
    DeviceCheck,
    ModelSection,
    RecipeSection,
    Report,
    ResultFigures,
)
from vggedge.core.run_folder import check_complete
from vggedge.device.benchmark import gzip_size, model_format
from vggedge.device.check import MEMORY_PER_MODEL_BYTE, device_check, meminfo, snapshot, system_vcgencmd
from vggedge.device.environment import describe_environment, device_model, emulation
from vggedge.device.models import DeviceModel, load
from vggedge.device.runtime import Runtime, default_threads
from vggedge.device.summary import BenchSummary, summarize
from vggedge.device.summary import write as write_summary


@dataclasses.dataclass
class BenchOptions:
    models: list[Path]  # model files (any format), or run folders of `optimize` (every artifact of each recipe)
    data: Path | None = None
    threads: list[int] | None = None  # None: all cores
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP
    out: Path | None = None
    runtime: str | None = None
    progress: bool = True
    cooldown_s: float = defaults.COOLDOWN_S
    sustain_s: float = defaults.SUSTAIN_S
    burst_runs: int = defaults.BURST_RUNS
    max_drop: float | None = None
    board_root: Path = Path("/")  # where the device check reads the board (a recorded tree in tests)
    vcgencmd: Callable[[], str | None] = system_vcgencmd


@dataclasses.dataclass
class BenchOutput:
    reports: list[Path]  # one report.json per model × threads
    summary: BenchSummary | None  # several models or thread counts: the table and the recommendation
    summary_path: Path | None


@dataclasses.dataclass
class BenchedModel:
    """One model file: what it is, what it scored (accuracy does not depend on threads), where it came from."""

    name: str
    path: Path
    source_report: Report | None
    input_size: int
    classes: int
    input_dtype: str
    runtime: Runtime | None = None  # what ran it here (the format decides which)
    accuracy: dict = dataclasses.field(default_factory=dict)
    agreement: float | None = None
    scores: np.ndarray | None = None
    keys: list[str] = dataclasses.field(default_factory=list)
    dataset: DatasetSection = dataclasses.field(default_factory=DatasetSection)
    notes: list[str] = dataclasses.field(default_factory=list)


def check_mode(models: list[Path] | None, serve: bool, profile: Path | None, threads: list[int] | None) -> None:
    """``bench`` runs one of three jobs: time model files, serve timings (``--serve``), or profile a kit
    (``--profile``); refuse a mix, or nothing to do, before any work."""
    if profile is not None:
        if models or serve:
            raise UserError("--profile times a kit's files: give no model files and no --serve with it")
        if threads and len(threads) > 1:
            raise UserError("--profile measures one thread count per table: give one --threads")
    elif serve:
        if models:
            raise UserError("--serve times the models clients send: give no model files with it")
    elif not models:
        raise UserError(
            "give a model file (.tflite, .onnx or .xml; or several, or a run folder of `vggedge optimize`), or --serve"
        )


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


def find_models(paths: list[Path]) -> list[tuple[str, Path]]:
    """(name, file) for every model asked for: a file, or every artifact of each recipe of a run folder.

    Everything is checked before any work, so a bad path stops the run with nothing written."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = run_folder_models(path)
            if not files:
                names = " or ".join(f.filename for f in FORMATS)
                raise UserError(f"{path} holds no {names} (nor <recipe>/{names}): give model files")
        else:
            files = [path]
        for file in files:
            found.append((model_name(file), file))
    names = [name for name, _ in found]
    # Two run folders may hold the same recipe: number them, so every row (and report folder) is its own.
    return [
        (f"{name}-{names[:i].count(name) + 1}" if names.count(name) > 1 else name, file)
        for i, (name, file) in enumerate(found)
    ]


def run_folder_models(folder: Path) -> list[Path]:
    """Every artifact of a run folder (``model.tflite``, ``model.onnx``, …), or of each recipe's folder in it."""
    recipes = sorted(p for p in folder.iterdir() if p.is_dir()) if not _artifacts(folder) else [folder]
    return [file for recipe in recipes for file in _artifacts(recipe)]


def _artifacts(folder: Path) -> list[Path]:
    return [folder / f.filename for f in FORMATS if (folder / f.filename).is_file()]


def model_name(file: Path) -> str:
    """The recipe that made it (its run folder's name) for ``<recipe>/model.tflite``, with the format for another
    artifact (``int8-onnx``); else the file's stem. The format is read from the file, whatever its name."""
    model_format = format_of(file)
    if file.name == model_format.filename and file.parent.name:
        return file.parent.name + ("" if model_format == TFLITE else f"-{model_format.name}")
    return file.stem


def bench(options: BenchOptions) -> BenchOutput:
    """Benchmark every model at every thread count; write a report for each (and, for several, the table)."""
    models = find_models(options.models)
    threads = sorted(set(options.threads or [default_threads()]))
    before = snapshot(options.board_root, options.vcgencmd)
    decoded: dict[tuple, tuple] = {}  # the data decoded once per input size and resize policy, for every model
    benched = [evaluate(name, path, options, threads[0], decoded) for name, path in models]
    emulated = emulation()
    # Every interpreter holds its own packed copy of the weights: all of them at once, when the board has room
    # (interleaved, the fairest comparison); else one model (at every thread count) at a time, and a note.
    sizes = [model_bytes(m.path) * len(threads) for m in benched]
    available = meminfo(options.board_root).get("MemAvailable")
    together = available is None or sum(sizes) * MEMORY_PER_MODEL_BYTE / 2**20 < 0.8 * available
    groups = [benched] if together else [[m] for m in benched]
    burst: dict[tuple[str, int], list[float]] = {}
    sustained: dict[tuple[str, int], list[float]] = {}
    if options.runs > 0 and not emulated:
        for group in groups:
            interpreters = {}
            for model in group:
                for count in threads:
                    interpreter = load(model.path, threads=count, runtime=options.runtime)
                    interpreter.set_input(np.zeros((model.input_size, model.input_size, 3), np.uint8))
                    for _ in range(options.warmup):
                        interpreter.invoke_once()  # XNNPACK packs its weights on the first run: never timed
                    interpreters[(model.name, count)] = interpreter
            group_burst, group_sustained = burst_and_sustained(interpreters, options)
            burst.update(group_burst)
            sustained.update(group_sustained)
            del interpreters
        if not together:
            for model in benched:
                model.notes.append(
                    "timed one model at a time (every thread count interleaved): all of them at once would not fit "
                    f"in the {available:.0f} MB available"
                )
    check = device_check(
        before,
        snapshot(options.board_root, options.vcgencmd),
        model_bytes=sum(sizes) if together else max(sizes),
        root=options.board_root,
    )
    single = len(benched) == 1 and len(threads) == 1
    out_root = options.out or default_out(options.models, benched, single)
    paths, names = [], []
    for model in benched:
        for count in threads:
            folder = out_root if single else out_root / f"{model.name}-{count}t"
            key = (model.name, count)
            report = build_report(model, count, burst.get(key), sustained.get(key), check, emulated)
            if model.scores is not None:
                write_predictions(folder / "predictions.json", model.keys, model.scores)
            paths.append(report.write(folder))
            names.append(model.name)
    if single:
        return BenchOutput(paths, None, None)
    summary = summarize(paths, names, options.max_drop)
    return BenchOutput(paths, summary, write_summary(summary, out_root))


def default_out(requested: list[Path], benched: list[BenchedModel], single: bool) -> Path:
    """Beside the model for one; for several, in the run folder asked for, else the models' common folder."""
    slug = f"bench-{device_slug()}"
    if single:
        return benched[0].path.parent / slug
    folders = [Path(p) for p in requested if Path(p).is_dir()]
    if len(folders) == 1:
        return folders[0] / slug
    homes = [m.path.resolve().parent for m in benched]
    named = {f.filename for f in FORMATS}
    parents = [str(h.parent if m.path.name in named else h) for m, h in zip(benched, homes, strict=True)]
    return Path(os.path.commonpath(parents)) / slug


def evaluate(name: str, path: Path, options: BenchOptions, threads: int, decoded: dict[tuple, tuple]) -> BenchedModel:
    """Load the model once, read its run folder, and score it on the data (when there is data)."""
    check_complete(path.parent)  # a run folder's model is the one its report describes, or refused
    probe = load(path, threads=threads, runtime=options.runtime)
    source_report, predictions = read_run_folder(path.parent)
    model = BenchedModel(
        name=name,
        path=path,
        source_report=source_report,
        input_size=probe.input_size,
        classes=probe.classes_out,
        input_dtype=probe.input_dtype,
        runtime=probe.runtime,
    )
    if options.data is None:
        model.notes.append("accuracy not measured: no --data")
        return model
    resize = probe.resize_inside() or "stretch"  # as the model was measured
    if (model.input_size, resize) not in decoded:
        decoded[(model.input_size, resize)] = load_all(
            options.data, model.input_size, progress=options.progress, resize=resize
        )
    class_names, split, skipped = decoded[(model.input_size, resize)]
    model_classes = 2 if model.classes == 1 else model.classes
    if len(class_names) != model_classes:
        raise UserError(
            f"the data has {len(class_names)} classes but {path} outputs {model_classes}: "
            "use the evaluation folder written by `vggedge optimize` or data with one subfolder per model class"
        )
    if predictions and set(predictions.get("keys", [])) & set(split.keys):
        # The run folder names its evaluation images: benchmark on exactly those, as optimize did.
        wanted = set(predictions["keys"])
        chosen = [i for i, key in enumerate(split.keys) if key in wanted]
        model.notes.append(
            f"evaluated the run's {len(chosen)} evaluation images found among {len(split.keys)} in {options.data}"
        )
        split = type(split)(split.images[chosen], split.labels[chosen], [split.keys[i] for i in chosen])
    model.scores = probe.predict(split.images, progress=options.progress, description=f"Evaluating {name}")
    model.keys = list(split.keys)
    model.accuracy = accuracy_figures(model.scores, split.labels)
    model.agreement = agreement_with_baseline(model.keys, model.scores, predictions)
    model.dataset = DatasetSection(
        name=Path(options.data).name,
        classes=len(class_names),
        eval_samples=len(model.keys),
        skipped=skipped,
        eval_source=str(options.data),
    )
    return model


def burst_and_sustained(
    interpreters: dict[tuple[str, int], DeviceModel], options: BenchOptions
) -> tuple[dict[tuple[str, int], list[float]], dict[tuple[str, int], list[float]]]:
    """(burst, sustained) milliseconds per (model, threads): a cool-down and a burst per model, then
    ``sustain_s`` of interleaved untimed load, then ``runs`` interleaved timed rounds (module docstring)."""
    burst: dict[tuple[str, int], list[float]] = {key: [] for key in interpreters}
    for name in dict.fromkeys(key[0] for key in interpreters):
        if options.progress and options.cooldown_s:
            log_line(f"bench: {options.cooldown_s:g} s of rest, then a burst of {name}")
        time.sleep(options.cooldown_s)
        for key in [k for k in interpreters if k[0] == name]:
            burst[key] = [_timed(interpreters[key]) for _ in range(options.burst_runs)]
    if options.progress and options.sustain_s:
        log_line(f"bench: {options.sustain_s:g} s of load on all {len(interpreters)} (model × threads), then timing")
    deadline = time.perf_counter() + options.sustain_s
    while time.perf_counter() < deadline:
        for interpreter in interpreters.values():
            interpreter.invoke_once()
    sustained: dict[tuple[str, int], list[float]] = {key: [] for key in interpreters}
    for _ in track(range(options.runs), "Timing", total=options.runs, enabled=options.progress):
        for key, interpreter in interpreters.items():
            sustained[key].append(_timed(interpreter))
    return burst, sustained


def _timed(interpreter: DeviceModel) -> float:
    start = time.perf_counter()
    interpreter.invoke_once()
    return (time.perf_counter() - start) * 1000.0


def build_report(
    model: BenchedModel,
    threads: int,
    burst: list[float] | None,
    sustained: list[float] | None,
    check: DeviceCheck,
    emulated: str | None,
) -> Report:
    notes = list(model.notes)
    if emulated:
        # An emulator's timings describe the emulator, not any device: accuracy only, latency null.
        notes.append(f"latency not measured: emulated ({emulated})")
    notes += [f"device check: {warning}" for warning in check.warnings]
    accuracy = model.accuracy if model.scores is not None else accuracy_figures(None, np.array([]))
    result = ResultFigures(
        format=model_format(format_of(model.path).name, model.input_dtype),
        size_bytes=model_bytes(model.path),
        gzip_bytes=gzip_size(model.path),
        **accuracy,
        latency_ms=latency_summary(sustained) if sustained else None,
        burst_latency_ms=latency_summary(burst) if burst else None,
        agreement=model.agreement,
    )
    source = model.source_report
    if source:
        recipe, model_section, baseline = source.recipe, source.model, source.baseline
        recipe = dataclasses.replace(recipe, name=model.name)  # int8-onnx: the same recipe's other format
        result.flops = source.result.flops  # a property of the graph, not of the device
        result.accuracy_budget = source.result.accuracy_budget
        # The same file was verified against its Keras source where optimize ran; here it is only held to the
        # budget again, on this device's own answers. Another format's file has its own row and status there.
        result.status = source.result.status
        written = next((a for a in source.artifacts if a.file == model.path.name), None)
        if written is not None:
            result.status = written.status
    else:
        result.status = STATUS_NOT_VERIFIED
        recipe = RecipeSection(name=model.name)
        model_section = ModelSection(
            source=str(model.path), input_shape=[model.input_size, model.input_size, 3], classes=model.classes
        )
        baseline = BaselineFigures()
        notes.append("no optimize report beside the model: ratios against the baseline are not available")
    environment = describe_environment(model.runtime, threads)
    environment.device_check = check
    report = Report(recipe, model_section, model.dataset, environment, baseline, result, notes, kind="device")
    budget = result.accuracy_budget.max_drop_pts if result.accuracy_budget else None
    drop = report.ratios.top1_delta_pts
    if result.status == STATUS_OK and budget is not None and drop is not None and -drop > budget:
        result.status = STATUS_OVER_BUDGET
        notes.append(f"top-1 here is {-drop:.2f} points below the baseline, more than the budget of {budget:g}")
    return report


def write_predictions(path: Path, keys: list[str], scores: np.ndarray) -> None:
    """This device's top-1 per image key, so runs on two devices (or runtimes) can be compared image by image."""
    write_text(path, json.dumps({"keys": keys, "top1": [int(c) for c in top1_classes(scores)]}) + "\n")
