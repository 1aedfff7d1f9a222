"""A short terminal summary of the reports a command wrote."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from vggedge.core.formatting import fmt
from vggedge.core.report import SHORT_STATUS, STATUS_OK, Report

LEGEND = (
    "MB: model file; ×small, ×fast: against the float32 Keras baseline (size, p50 latency); "
    "Δ pts: top-1 change in points; agree: top-1 agreement with the baseline"
)


def print_reports(paths: list[Path]) -> list[str]:
    """Print the reports' table; return their result statuses."""
    statuses = []
    # Short headers and no vertical rules: the table fits 80 columns (CI logs, ssh to a Pi) uncut.
    reports = [Report.load(path) for path in paths]
    # One space of padding between columns (not two) and the legend below, as text: 9 columns fit 80.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    # Every cell at its natural width (rich would otherwise fold the first column to make room).
    names = [f"{r.recipe.name}-{a.format}" for r in reports for a in r.artifacts[1:]] + [r.recipe.name for r in reports]
    table.add_column("recipe", no_wrap=True, min_width=max(len(name) for name in names))
    table.add_column("status", no_wrap=True, min_width=max(len(short_status(report)) for report in reports))
    for header in ("MB", "×small", "top-1", "Δ pts", "agree", "p50 ms", "×fast"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    baseline = None
    for report in reports:
        baseline = report.baseline
        r, x = report.result, report.ratios
        statuses.append(r.status)
        table.add_row(
            report.recipe.name,
            short_status(report),
            fmt(r.size_bytes / 1e6 if r.size_bytes else None, ".2f"),
            fmt(x.size, "ratio"),
            fmt(r.top1, "pct"),
            fmt(x.top1_delta_pts, "+.2f"),
            fmt(r.agreement, "pct"),
            fmt(r.latency_ms.p50 if r.latency_ms else None, ".2f"),
            fmt(x.speedup, "ratio"),
        )
        for row in other_formats(report):
            table.add_row(*row)
    console = Console()
    if baseline and baseline.size_bytes is not None:  # a loose .tflite benched alone has no baseline
        console.print(
            f"Baseline (keras float32 on {baseline.device}): {baseline.size_bytes / 1e6:.1f} MB, "
            f"top-1 {fmt(baseline.top1, 'pct')}, "
            f"p50 {fmt(baseline.latency_ms.p50 if baseline.latency_ms else None, '.2f')} ms"
        )
    console.print(table)
    console.print(LEGEND, highlight=False)
    for report in reports:
        if report.result.status != STATUS_OK and report.result.layer_error:
            worst = report.result.layer_error[0]
            console.print(
                f"{report.recipe.name}: worst int8 layer {worst['part']} · {worst['layer']} "
                f"(own SQNR {fmt(worst.get('own_sqnr_db'))} dB, median channel "
                f"{fmt(worst.get('median_channel_share'))} of the range): see the report's int8 error table; "
                '--keep-float auto (keep_float = "auto" in the quantize step) keeps the worst layers in float',
                highlight=False,
            )
    for path in paths:
        console.print(f"report: {Path(path).parent / 'report.md'}", highlight=False, soft_wrap=True)
    return statuses


def other_formats(report: Report) -> list[list[str]]:
    """A row per format the run wrote besides TFLite (``--formats``): its own figures against the same baseline."""
    b, rows = report.baseline, []
    for a in report.artifacts[1:]:
        smaller = b.size_bytes / a.size_bytes if b.size_bytes and a.size_bytes else None
        faster = b.latency_ms.p50 / a.p50_ms if b.latency_ms and b.latency_ms.p50 and a.p50_ms else None
        delta = (a.top1 - b.top1) * 100 if a.top1 is not None and b.top1 is not None else None
        rows.append([
            f"{report.recipe.name}-{a.format}", SHORT_STATUS.get(a.status, a.status),
            fmt(a.size_bytes / 1e6 if a.size_bytes else None, ".2f"), fmt(smaller, "ratio"), fmt(a.top1, "pct"),
            fmt(delta, "+.2f"), fmt(a.agreement, "pct"), fmt(a.p50_ms, ".2f"), fmt(faster, "ratio"),
        ])  # fmt: skip
    return rows


def short_status(report: Report) -> str:
    return SHORT_STATUS.get(report.result.status, report.result.status)
