"""One table for a bench of several models × thread counts, and what to run on *this* board.

The recommendation is the fastest model × threads (sustained p50) whose top-1 is within the accuracy
budget, judged as ``compare`` judges it (``vggedge.core.budget.within_budget``), so the two never disagree.
A line says when an int8 model is no faster than the float model of the same graph here (ncnn measures
VGG16 int8 slower than float on a Pi 5 at one thread): on such a board the float file is the better choice.
Written as ``bench.md`` and ``bench.json`` beside the per-model reports.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from vggedge.core.atomic import write_text
from vggedge.core.budget import within_budget
from vggedge.core.formatting import fmt
from vggedge.core.report import SHORT_STATUS, STATUS_NOT_VERIFIED, Report

INTEGER_QUANTIZATIONS = ("int8", "int8-qat")
FLOAT_QUANTIZATIONS = ("float32", "float16")


@dataclasses.dataclass
class BenchRow:
    model: str
    threads: int | None
    status: str
    quantization: str | None
    flops: int | None
    size_mb: float | None
    top1: float | None
    delta_top1_pts: float | None
    budget_pts: float | None
    burst_p50_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    report: str

    @property
    def label(self) -> str:
        return f"{self.model} at {self.threads} thread{'s' if self.threads != 1 else ''}"


@dataclasses.dataclass
class BenchSummary:
    rows: list[BenchRow]
    recommendation: str
    lines: list[str]  # int8 against float on this board
    warnings: list[str]  # the device check's, said once for the whole run


def row_from_report(report: Report, path: Path, name: str) -> BenchRow:
    r, x = report.result, report.ratios
    return BenchRow(
        model=name,
        threads=report.environment.threads,
        status=r.status,
        quantization=report.recipe.quantization,
        flops=r.flops,
        size_mb=round(r.size_bytes / 1e6, 4) if r.size_bytes else None,
        top1=r.top1,
        delta_top1_pts=x.top1_delta_pts,
        budget_pts=r.accuracy_budget.max_drop_pts if r.accuracy_budget else None,
        burst_p50_ms=r.burst_latency_ms.p50 if r.burst_latency_ms else None,
        p50_ms=r.latency_ms.p50 if r.latency_ms else None,
        p90_ms=r.latency_ms.p90 if r.latency_ms else None,
        report=str(path),
    )


def summarize(paths: list[Path], names: list[str], max_drop: float | None = None) -> BenchSummary:
    reports = [Report.load(path) for path in paths]
    rows = [row_from_report(report, path, name) for report, path, name in zip(reports, paths, names, strict=True)]
    check = reports[0].environment.device_check if reports else None
    return BenchSummary(
        rows, recommendation_sentence(rows, max_drop), int8_against_float(rows), check.warnings if check else []
    )


def _eligible(row: BenchRow, max_drop: float | None) -> bool:
    return within_budget(
        {"recipe": row.model, "status": row.status, "delta_top1_pts": row.delta_top1_pts, "budget_pts": row.budget_pts},
        max_drop,
    )


def recommendation_sentence(rows: list[BenchRow], max_drop: float | None = None) -> str:
    timed = [row for row in rows if row.p50_ms is not None]
    if not timed:
        return "no recommendation: no latency was measured (emulated, or --runs 0)"
    eligible = [row for row in timed if _eligible(row, max_drop)]
    if not eligible and all(row.status == STATUS_NOT_VERIFIED for row in timed):
        fastest = min(timed, key=lambda row: row.p50_ms)
        return (
            f"none: no file has an optimize report beside it, so none is verified (fastest here: {fastest.label}, "
            f"{fastest.p50_ms:.2f} ms)"
        )
    if not eligible:
        return "none: no model × threads is within the accuracy budget here (see each report's top-1 and status)"
    best = min(eligible, key=lambda row: (row.p50_ms, row.threads or 0, row.size_mb or 0))
    accuracy = (
        f"top-1 {fmt(best.top1, 'pct')}, {fmt(best.delta_top1_pts, '+.2f')} pts"
        if best.top1 is not None
        else "accuracy as verified by optimize"
    )
    return f"{best.label} on this board: sustained p50 {best.p50_ms:.2f} ms ({accuracy}), within the budget"


def int8_against_float(rows: list[BenchRow]) -> list[str]:
    """A line for each int8 model no faster than the float model of the same graph at the same threads."""
    found = []
    for row in rows:
        if row.quantization not in INTEGER_QUANTIZATIONS or row.p50_ms is None or row.flops is None:
            continue
        floats = [
            other
            for other in rows
            if other.quantization in FLOAT_QUANTIZATIONS
            and other.flops == row.flops
            and other.threads == row.threads
            and other.p50_ms is not None
        ]
        for other in floats:
            if row.p50_ms >= other.p50_ms:
                found.append(
                    f"int8 is no faster than float here: {row.label} {row.p50_ms:.2f} ms, "
                    f"{other.model} ({other.quantization}) {other.p50_ms:.2f} ms; on this board the float file is "
                    "the better choice for speed"
                )
    return found


def to_markdown(summary: BenchSummary) -> str:
    lines = [
        "# vggedge bench",
        "",
        f"**Recommendation**: {summary.recommendation}.",
        "",
        *[f"- {line}" for line in summary.lines],
        *[f"- ⚠ {warning}" for warning in summary.warnings],
        "",
        "| model | threads | status | MB | top-1 | Δ pts | burst p50 ms | sustained p50 ms | p90 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.threads} | {r.status} | {fmt(r.size_mb, '.3f')} | {fmt(r.top1, 'pct')} | "
        f"{fmt(r.delta_top1_pts, '+.2f')} | {fmt(r.burst_p50_ms, '.2f')} | {fmt(r.p50_ms, '.2f')} | "
        f"{fmt(r.p90_ms, '.2f')} |"
        for r in summary.rows
    ]
    return "\n".join(lines) + "\n"


def write(summary: BenchSummary, folder: Path) -> Path:
    """``bench.md`` and ``bench.json`` in ``folder``; returns the Markdown path."""
    data = {
        "schema": "vggedge.bench/1",
        "recommendation": summary.recommendation,
        "lines": summary.lines,
        "warnings": summary.warnings,
        "rows": [dataclasses.asdict(row) for row in summary.rows],
    }
    write_text(folder / "bench.json", json.dumps(data, indent=2) + "\n")
    write_text(folder / "bench.md", to_markdown(summary))
    return folder / "bench.md"


def print_summary(summary: BenchSummary) -> None:
    """The table at 80 columns, then the recommendation, the int8 lines and the board's warnings."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model", no_wrap=True, min_width=max(len(r.model) for r in summary.rows))
    for header in ("thr", "status", "MB", "top-1", "Δ pts", "burst ms", "p50 ms", "p90 ms"):
        table.add_column(header, justify="right", no_wrap=True)
    for r in summary.rows:
        table.add_row(
            r.model,
            str(r.threads),
            SHORT_STATUS.get(r.status, r.status),
            fmt(r.size_mb, ".2f"),
            fmt(r.top1, "pct"),
            fmt(r.delta_top1_pts, "+.2f"),
            fmt(r.burst_p50_ms, ".2f"),
            fmt(r.p50_ms, ".2f"),
            fmt(r.p90_ms, ".2f"),
        )
    console = Console()
    console.print(table)
    legend = "burst: first runs after a cool-down; p50/p90: sustained, after time under load"
    console.print(legend, highlight=False, soft_wrap=True)
    console.print(f"Recommendation: {summary.recommendation}", highlight=False, soft_wrap=True)
    for line in summary.lines:
        console.print(line, highlight=False, soft_wrap=True)
    for warning in summary.warnings:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
