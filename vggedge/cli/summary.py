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
    table.add_column("recipe", no_wrap=True, min_width=max(len(report.recipe.name) for report in reports))
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
            fmt(x.size, ".2f"),
            fmt(r.top1, "pct"),
            fmt(x.top1_delta_pts, "+.2f"),
            fmt(r.agreement, "pct"),
            fmt(r.latency_ms.p50 if r.latency_ms else None, ".2f"),
            fmt(x.speedup, ".2f"),
        )
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


def short_status(report: Report) -> str:
    return SHORT_STATUS.get(report.result.status, report.result.status)
