"""``vggedge compare PATH...``: one table of every recipe and device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def compare_command(
    paths: Annotated[list[Path], typer.Argument(help="report.json files or folders (searched recursively).")],
    format: Annotated[str, typer.Option("--format", help="Terminal output: table, md, csv or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json (for scripts).")] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="Also write compare.md, compare.csv and compare.html here.")
    ] = None,
) -> None:
    """Compare reports across recipes and devices: size, accuracy, agreement, latency and speed-up."""
    from vggedge.compare import run_compare

    run_compare(paths, "json" if as_json else format, out)
