"""``vggedge compare PATH...``: one table of every recipe and device, and the recommendation per device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def compare_command(
    paths: Annotated[list[Path], typer.Argument(help="report.json files or folders (searched recursively).")],
    format: Annotated[str, typer.Option("--format", help="Terminal output: table, md, csv or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json (for scripts).")] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="Also write compare.md, compare.csv, compare.json and compare.html here.")
    ] = None,
    max_drop: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=100.0,
            help="Accuracy budget for the recommendations: top-1 points a result may lose. "
            "Default: each report's own budget (its status).",
        ),
    ] = None,
) -> None:
    """Compare reports across recipes and devices, and recommend one per device.

    Size, accuracy, latency and speed-up in one table, and per device the smallest, the fastest and the most
    accurate result within the accuracy budget."""
    from vggedge.comparison import check_format, compare

    format = "json" if as_json else format
    check_format(format)  # before any file is read or written
    comparison = compare(paths, max_drop)
    if out is not None:
        comparison.save(out)
    comparison.print(format)
