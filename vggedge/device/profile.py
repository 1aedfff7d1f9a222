"""``vggedge bench --profile KIT``: time every file of a profiling kit on this device and write the latency table.

The kit (made on the workstation by ``vggedge kit MODEL``, :mod:`vggedge.auto.kit`) holds one int8 TFLite file
per piece of the model at each width the search can give it, and a few whole models. Each file is loaded alone,
warmed, and invoked for at least ``seconds`` (and ``runs`` times); its p50 is its entry. The whole models are
timed before and after the pieces, so the table shows whether the board's speed moved while it was measured
(``whole_drift_pct``), and the board's state (governor, temperature, throttling) is checked around it all, as
``bench`` does. No TensorFlow; no latency under emulation.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
from pathlib import Path

import numpy as np

from vggedge.core import defaults
from vggedge.core.atomic import write_text
from vggedge.core.errors import UserError
from vggedge.core.keywords import ProfileKeywords, default_of
from vggedge.core.metrics import adaptive_runs, latency_summary, time_calls
from vggedge.core.progress import track
from vggedge.device.check import device_check, snapshot, warnings
from vggedge.device.environment import describe_environment, emulation
from vggedge.device.latency_table import KIT_SCHEMA, TABLE_SCHEMA, assemble
from vggedge.device.models import load
from vggedge.device.runtime import check_tflite_file, default_threads, find_runtime

MAX_RUNS = 5000
DRIFT_WARNING_PCT = 5.0  # the full-width models measured this much apart before and after the pieces: a moving board


@dataclasses.dataclass
class ProfileOptions:
    kit: Path
    threads: int | None = None
    runtime: str | None = None
    seconds: float = default_of(ProfileKeywords, "profile_seconds")  # per file, after warm-up
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP
    out: Path | None = None
    progress: bool = True


def read_kit(folder: Path) -> dict:
    """The kit's manifest, every file it lists checked to be there; one line when the folder is not a kit."""
    folder = Path(folder)
    manifest_path = folder / "kit.json"
    if not manifest_path.is_file():
        raise UserError(f"--profile {folder}: no kit.json there (make a kit with `vggedge kit MODEL --out {folder}`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"--profile {folder}: kit.json is not readable JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != KIT_SCHEMA:
        raise UserError(f"--profile {folder}: kit.json is not a profiling kit ({KIT_SCHEMA})")
    try:
        files = [e["file"] for e in manifest["entries"]] + [w["file"] for w in manifest["wholes"]]
    except (KeyError, TypeError) as error:
        raise UserError(f"--profile {folder}: kit.json lacks {error}") from None
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"--profile {folder}: kit.json names a file outside the kit ({name!r})")
        check_tflite_file(folder / name)
    return manifest


def time_file(path: Path, runtime: str | None, threads: int, seconds: float, runs: int, warmup: int) -> float:
    """p50 milliseconds of one file invoked on a zero input, at least ``runs`` times and ``seconds`` in all."""
    model = load(path, threads=threads, runtime=runtime, classifier=False)
    model.set_input(np.zeros(model.input_shape, np.float32))
    count = adaptive_runs(model.invoke_once, seconds, runs, cap=MAX_RUNS, warmup=max(warmup, 1))
    return latency_summary(time_calls(model.invoke_once, warmup=0, runs=count)).p50


def profile(options: ProfileOptions) -> Path:
    """Time the kit, write the table (default ``KIT/table-<threads>t.json``), return its path."""
    manifest = read_kit(options.kit)
    emulated = emulation()
    if emulated:
        raise UserError(f"--profile times the device, and this is an emulator ({emulated}): its timings mean nothing")
    runtime = find_runtime(options.runtime)
    threads = options.threads or default_threads()
    out = Path(options.out) if options.out else Path(options.kit) / f"table-{threads}t.json"

    def timed(name: str) -> float:
        return time_file(
            Path(options.kit) / name, options.runtime, threads, options.seconds, options.runs, options.warmup
        )

    wholes = [w["file"] for w in manifest["wholes"]]
    before = snapshot()
    first = {name: timed(name) for name in track(wholes, "Timing the whole models", len(wholes), options.progress)}
    pieces = {
        e["file"]: timed(e["file"])
        for e in track(manifest["entries"], "Timing the pieces", len(manifest["entries"]), options.progress)
    }
    second = {
        name: timed(name) for name in track(wholes, "Timing the whole models again", len(wholes), options.progress)
    }
    largest = max((Path(options.kit) / name).stat().st_size for name in [*pieces, *wholes])
    check = device_check(before, snapshot(), model_bytes=largest)
    whole_ms = {name: statistics.mean([first[name], second[name]]) for name in wholes}
    drift = max(abs(second[name] - first[name]) / first[name] * 100 for name in wholes)
    environment = describe_environment(runtime, threads)
    environment.device_check = check
    notes = list(warnings(check))
    if drift > DRIFT_WARNING_PCT:
        notes.append(
            f"the whole models measured up to {drift:.1f}% apart before and after the pieces: the board's speed moved "
            "(heat, a governor, other load); profile again on a quiet, cool board"
        )
    table = {
        "schema": TABLE_SCHEMA,
        "model": manifest["model"],
        "source": manifest.get("source"),
        "quantization": manifest["quantization"],
        "levels": manifest["levels"],
        "heads": manifest["heads"],
        "threads": threads,
        **assemble(manifest, pieces, whole_ms),
        "wholes": [
            {**w, "ms_before": round(first[w["file"]], 4), "ms_after": round(second[w["file"]], 4)}
            for w in manifest["wholes"]
        ],
        "whole_drift_pct": round(drift, 2),
        "seconds_per_file": options.seconds,
        "warnings": notes,
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            **dataclasses.asdict(environment),
            "runtime": f"{runtime.name} {runtime.version}",
        },
        "kit_made_with": manifest.get("made_with"),
    }
    write_text(out, json.dumps(table, indent=1))
    return out
