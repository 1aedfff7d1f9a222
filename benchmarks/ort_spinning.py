"""ONNX Runtime's spinning pool threads and interleaved timing: the same ONNX files timed alone and interleaved, with
spinning on (ONNX Runtime's default) and off (vggedge's sessions, :func:`vggedge.device.onnx_model.session_options`).

    python benchmarks/ort_spinning.py A.onnx B.onnx [--threads 2] [--runs 25] [--out reports/benchmarks]

Each file runs in a session of its own at ``--threads`` intra-op threads; "alone": one file's runs back to back in a
process of its own; "interleaved": one run of each file in turn, both sessions in one process, as ``vggedge bench``
and ``benchmarks/fullsize.py`` time. Medians of ``--runs`` runs after three warm-up runs. The full-size files come
from ``benchmarks/fullsize.py --work DIR`` (``DIR/int8/model.onnx``, ``DIR/fast/model.onnx``, the peer's
``DIR/model-int8.onnx``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def session(path: Path, threads: int, spinning: bool):  # noqa: ANN201
    """A callable that runs ``path`` once on a fixed random image."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    run = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tensor = run.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in tensor.shape]
    pixels = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8 if "uint8" in tensor.type else np.float32)
    return lambda: run.run(None, {tensor.name: pixels})


def medians(paths: list[Path], threads: int, spinning: bool, runs: int) -> list[float]:
    """Milliseconds per run of each file, one run of each in turn."""
    calls = [session(path, threads, spinning) for path in paths]
    for call in calls:
        for _ in range(3):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, measured in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            measured.append((time.perf_counter() - started) * 1000)
    return [round(float(np.median(measured)), 1) for measured in times]


def alone(path: Path, threads: int, spinning: bool, runs: int) -> float:
    """One file's median in a process of its own (no other session's threads anywhere)."""
    code = (
        "import json, sys; sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r}); import ort_spinning as o; "
        "from pathlib import Path; print(json.dumps(o.medians([Path({path!r})], {threads}, {spinning}, {runs})[0]))"
    ).format(root=str(ROOT), bench=str(ROOT / "benchmarks"), path=str(path), threads=threads, spinning=spinning,
             runs=runs)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs=2, type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = parser.parse_args()
    from fullsize import environment_name

    from vggedge.device.environment import cpu_features, cpu_name

    rows = []
    for spinning in (True, False):
        together = medians(args.files, args.threads, spinning, args.runs)
        for path, interleaved in zip(args.files, together, strict=True):
            by_itself = alone(path, args.threads, spinning, args.runs)
            rows.append((path, spinning, by_itself, interleaved))
    import onnxruntime

    lines = [
        "# ONNX Runtime's spinning threads and interleaved timing",
        "",
        f"`python benchmarks/ort_spinning.py {' '.join(str(p) for p in args.files)} --threads {args.threads} "
        f"--runs {args.runs}`: medians of {args.runs} runs at {args.threads} threads, onnxruntime "
        f"{onnxruntime.__version__}, {cpu_name()} ({', '.join(cpu_features()) or 'no listed features'}).",
        "",
        "| file | spinning | alone ms | interleaved ms | interleaved / alone |",
        "|---|---|---|---|---|",
    ]
    for path, spinning, by_itself, interleaved in rows:
        name = f"{path.parent.name}/{path.name}"
        lines.append(
            f"| {name} | {'on' if spinning else 'off'} | {by_itself} | {interleaved} | {interleaved / by_itself:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"ort-spinning-{environment_name()}.md").write_text(text)


if __name__ == "__main__":
    main()
