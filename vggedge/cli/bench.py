"""``vggedge bench MODEL.tflite``: the device-side benchmark (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vggedge import defaults
from vggedge.cli.options import VerboseOption, apply_verbosity


def bench_command(
    model: Annotated[
        Path, typer.Argument(help="A .tflite file, ideally inside a run folder written by `vggedge optimize`.")
    ],
    data: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Labelled images, one subfolder per class (e.g. "
                "reports/sklearn-digits-32-eval); when the run folder names its "
                "evaluation images, only those are used, else every image."
            )
        ),
    ] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: all cores).")] = None,
    runs: Annotated[
        int, typer.Option(min=1, help="Timed batch-1 runs (after warm-up; none under emulation).")
    ] = defaults.RUNS,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = defaults.WARMUP,
    out: Annotated[Optional[Path], typer.Option(help="Report folder (default: <model folder>/bench-<device>).")] = None,
    runtime: Annotated[
        Optional[str],
        typer.Option(envvar="VGGEDGE_RUNTIME", help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Benchmark a TFLite model on this device (accuracy, agreement with the baseline, latency p50/p90)
    and write a report.json in the same schema as `optimize`."""
    apply_verbosity(verbose)
    from vggedge.cli.summary import print_reports
    from vggedge.device_bench import BenchOptions, bench

    path = bench(BenchOptions(model, data, threads, runs, warmup, out, runtime, progress=not quiet))
    print_reports([path])
