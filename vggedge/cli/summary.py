"""A short terminal summary of the reports a command wrote."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f}%"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def print_reports(paths: list[Path]) -> None:
    table = Table("recipe", "status", "size MB", "× smaller", "top-1", "Δ pts", "agreement", "p50 ms", "speed-up")
    baseline = None
    for path in paths:
        report = json.loads(Path(path).read_text())
        baseline = report["baseline"]
        r, x = report["result"], report["ratios"]
        table.add_row(
            report["recipe"]["name"], r["status"], _num((r.get("size_bytes") or 0) / 1e6 if r.get("size_bytes") else None, ".2f"),
            _num(x.get("size"), ".2f"), _pct(r.get("top1")), _num(x.get("top1_delta_pts"), "+.2f"), _pct(r.get("agreement")),
            _num((r.get("latency_ms") or {}).get("p50"), ".2f"), _num(x.get("speedup"), ".2f"),
        )
    console = Console()
    if baseline and baseline.get("size_bytes") is not None:  # a loose .tflite benched alone has no baseline
        console.print(
            f"Baseline (keras float32 on {baseline['device']}): {baseline['size_bytes'] / 1e6:.1f} MB, "
            f"top-1 {_pct(baseline.get('top1'))}, p50 {_num((baseline.get('latency_ms') or {}).get('p50'), '.2f')} ms"
        )
    console.print(table)
    for path in paths:
        console.print(f"report: {Path(path).parent / 'report.md'}", highlight=False, soft_wrap=True)
