"""How far each figure the test suite asserts moves with the seed and with oneDNN: where the bars come from.

Runs the trained tests (``pytest -m slow``) once per seed (``VGGEDGE_TEST_SEED``) and oneDNN setting
(``TF_ENABLE_ONEDNN_OPTS``), each in a fresh process, collects every figure the tests log with
``conftest.record_figure``, and prints min / median / max per figure with the CPU it ran on. A bar goes
safely below the worst value seen here; the spread is quoted in the test's docstring.

    python benchmarks/test_spread.py --seeds 0 1 2 3 4 --onednn 1 0

Writes ``reports/benchmarks/test-spread-<environment>.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vggedge.device.environment import cpu_features, cpu_name  # noqa: E402


def run_suite(seed: int, onednn: str, log: Path, pytest_args: list[str]) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "VGGEDGE_TEST_SEED": str(seed),
        "TF_ENABLE_ONEDNN_OPTS": onednn,
        "VGGEDGE_SPREAD_LOG": str(log),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *pytest_args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode, summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--onednn", nargs="+", default=["1", "0"], help="TF_ENABLE_ONEDNN_OPTS values")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("pytest_args", nargs="*", default=["-m", "slow"])
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp()) / "figures.jsonl"
    runs = []
    for onednn in args.onednn:
        for seed in args.seeds:
            code, summary, seconds = run_suite(seed, onednn, log, args.pytest_args)
            runs.append((seed, onednn, summary, seconds))
            print(f"seed {seed} oneDNN {onednn}: {summary} ({seconds:.0f} s)", flush=True)

    values: dict[str, list[tuple[float, int, str]]] = collections.defaultdict(list)
    for line in log.read_text().splitlines() if log.exists() else []:
        entry = json.loads(line)
        values[entry["figure"]].append((entry["value"], entry["seed"], entry["onednn"]))

    cpu = f"{cpu_name()} ({', '.join(cpu_features()) or 'no listed features'})"
    lines = [
        "# Spread of the test suite's figures over seeds and oneDNN settings",
        "",
        f"CPU: {cpu}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}. "
        f"Command: `python benchmarks/test_spread.py --seeds {' '.join(map(str, args.seeds))} "
        f"--onednn {' '.join(args.onednn)}`.",
        "",
        "| run (seed, oneDNN) | pytest summary | s |",
        "|---|---|---|",
        *[f"| {seed}, {onednn} | {summary} | {seconds:.0f} |" for seed, onednn, summary, seconds in runs],
        "",
        "| figure | n | min | median | max | min at (seed, oneDNN) |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(values):
        numbers = [v for v, _, _ in values[name]]
        worst = min(values[name])
        lines.append(
            f"| {name} | {len(numbers)} | {min(numbers):.4f} | {statistics.median(numbers):.4f} | "
            f"{max(numbers):.4f} | {worst[1]}, {worst[2]} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{platform.machine()} {cpu_name()} {os.cpu_count()}cores".lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"test-spread-{slug}.md").write_text(text)


if __name__ == "__main__":
    main()
