"""``vggedge optimize``: run one recipe (or all) against the float32 baseline and write reports.

Its options are :mod:`vggedge.core.keywords`' declarations (the same as ``vggedge.optimize``'s keywords), plus
``--verbose``.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console

from vggedge.cli.options import VERBOSE, apply_verbosity, command
from vggedge.core.keywords import OptimizeInputs, OptimizeKeywords


def optimize_command(**asked: Any) -> None:  # noqa: ANN401 - one keyword per declared option
    """Optimize a VGG model with recipes and write a verified TFLite model and a report for each.

    Measures the float32 baseline once, applies each recipe's steps, converts to TFLite, verifies it against its
    Keras source, benchmarks it, and writes reports/RECIPE/ (model.tflite, recipe.toml, report.json, report.md).

    Exit code: 0 when every result is ok (verified, within the accuracy budget), 1 when any is not (every report
    is still written), 2 for bad input (nothing written). Under TF_CONFIG every worker runs this same command and
    fine-tunes in lock-step with the others; only the chief (worker 0) writes reports.
    """
    apply_verbosity(asked.pop("verbose"))
    from vggedge.api import optimize
    from vggedge.cli.summary import print_reports

    stderr = Console(stderr=True)
    inputs = [asked.pop(name) for name in ("model", "recipe", "data")]
    on_skip = lambda line: stderr.print(f"skipped {line}", highlight=False, soft_wrap=True)  # noqa: E731
    results = optimize(*inputs, on_skip=on_skip, **asked)
    if not results:  # a cluster's other worker: it fine-tuned in step with the chief, which writes the reports
        from vggedge.run.requests import cluster_place

        index, workers = cluster_place(os.environ["TF_CONFIG"])
        stderr.print(
            f"worker {index + 1} of {workers}: fine-tuned in step with the chief, which writes the reports",
            highlight=False,
        )
        return
    print_reports([result.folder / "report.json" for result in results])
    if not all(result.ok for result in results):
        raise typer.Exit(1)


command(optimize_command, OptimizeInputs, OptimizeKeywords, extra=(VERBOSE,))
