"""``vggedge bench MODEL.tflite …``: the device-side benchmark (no TensorFlow needed), and ``--serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vggedge.cli.options import VerboseOption, apply_verbosity
from vggedge.core import defaults
from vggedge.core.errors import UserError


def parse_threads(text: str | None) -> list[int] | None:
    """``"1,2,4"`` as [1, 2, 4]; None for all cores."""
    if text is None:
        return None
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--threads takes counts separated by commas (e.g. 1,2,4), not {text!r}") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--threads takes counts of at least 1 (e.g. 1,2,4), not {text!r}")
    return counts


def bench_command(
    models: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="One or more .tflite files, or a run folder of `vggedge optimize` (every <recipe>/model.tflite "
            "in it), ideally inside the run folders `optimize` wrote.",
            show_default=False,
        ),
    ] = None,
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
    threads: Annotated[
        Optional[str],
        typer.Option(help="Interpreter threads, one count or several: 1,2,4 (default: all cores).", show_default=False),
    ] = None,
    runs: Annotated[
        int, typer.Option(min=0, help="Timed batch-1 runs of each model × threads, interleaved (none under emulation).")
    ] = defaults.RUNS,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs of each interpreter.")] = defaults.WARMUP,
    cooldown: Annotated[
        float,
        typer.Option(min=0, envvar="VGGEDGE_COOLDOWN", help="Seconds of rest before each model's burst."),
    ] = defaults.COOLDOWN_S,
    burst_runs: Annotated[
        int, typer.Option(min=0, help="Timed runs right after the cool-down: the burst p50.")
    ] = defaults.BURST_RUNS,
    sustain: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="VGGEDGE_SUSTAIN",
            help="Seconds of interleaved load before the timed runs: the sustained p50 comes after.",
        ),
    ] = defaults.SUSTAIN_S,
    max_drop: Annotated[
        Optional[float],
        typer.Option(min=0, help="Accuracy budget in top-1 points for the recommendation (default: each report's)."),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            help="Report folder (one model: default <model folder>/bench-<device>; several: a folder of "
            "<model>-<N>t reports and bench.md, default bench-<device> in the run folder)."
        ),
    ] = None,
    runtime: Annotated[
        Optional[str],
        typer.Option(envvar="VGGEDGE_RUNTIME", help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Run the bench server instead: time TFLite files sent over HTTP (token-checked) for "
            "`optimize --recipe auto --time-on http://HOST:PORT`.",
        ),
    ] = False,
    profile: Annotated[
        Optional[Path],
        typer.Option(
            help="Time a profiling kit instead (a folder `vggedge kit MODEL` made): every piece at every width, "
            "written as the latency table for `optimize --recipe auto --time-on TABLE.json` (default "
            "KIT/table-<N>t.json, or --out).",
            show_default=False,
        ),
    ] = None,
    profile_seconds: Annotated[
        float, typer.Option(min=0.0, help="--profile: seconds of timed runs per file (after the warm-up).")
    ] = 0.25,
    host: Annotated[
        str, typer.Option(help="--serve: the address to listen on (loopback unless you say otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="--serve: the port (0: any free one).")] = 8765,
    token_file: Annotated[
        Optional[Path],
        typer.Option(
            help="--serve: where the access token is kept (created with mode 0600 on first start; default "
            "~/.config/vggedge/bench-token)."
        ),
    ] = None,
    max_mb: Annotated[float, typer.Option(min=0.001, help="--serve: the largest model file accepted, in MB.")] = 600.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Benchmark TFLite models on this device: accuracy, agreement with the baseline, burst and sustained
    latency at each thread count, and the board's state (governor, temperature, throttling, memory). Writes a
    report.json per model × threads in the same schema as `optimize`; for several, one table and the fastest
    model × threads within the accuracy budget."""
    apply_verbosity(verbose)
    counts = parse_threads(threads)
    if profile is not None:
        if models or serve:
            raise UserError("--profile times a kit's files: give no model files and no --serve with it")
        if counts and len(counts) > 1:
            raise UserError("--profile measures one thread count per table: give one --threads")
        from vggedge.device.profile import ProfileOptions
        from vggedge.device.profile import profile as profile_kit

        table = profile_kit(
            ProfileOptions(
                kit=profile,
                threads=counts[0] if counts else None,
                runtime=runtime,
                seconds=profile_seconds,
                runs=runs,
                warmup=warmup,
                out=out,
                progress=not quiet,
            )
        )
        from vggedge.device.latency_table import LatencyTable

        measured = LatencyTable.load(table)
        for check in measured.checks:
            typer.echo(
                f"check: blocks at levels {check['levels']} ({check['head']} head): predicted "
                f"{check['predicted_ms']:.3f} ms, measured {check['measured_ms']:.3f} ms ({check['error_pct']:+.1f}%)"
            )
        for warning in measured.warnings:
            typer.echo(f"warning: {warning}")
        typer.echo(f"table: {table} (for `vggedge optimize --recipe auto --time-on {table}`)")
        return
    if serve:
        if models:
            raise UserError("--serve times the models clients send: give no model files with it")
        from vggedge.device.server import ServerOptions, serve_forever

        serve_forever(ServerOptions(host, port, token_file, int(max_mb * 1e6), counts, runtime, runs, warmup))
        return
    if not models:
        raise UserError("give a .tflite file (or several, or a run folder of `vggedge optimize`), or --serve")
    from vggedge.cli.summary import print_reports
    from vggedge.device.bench import BenchOptions, bench
    from vggedge.device.summary import print_summary

    output = bench(
        BenchOptions(
            models=list(models),
            data=data,
            threads=counts,
            runs=runs,
            warmup=warmup,
            out=out,
            runtime=runtime,
            progress=not quiet,
            cooldown_s=cooldown,
            sustain_s=sustain,
            burst_runs=burst_runs,
            max_drop=max_drop,
        )
    )
    if output.summary is None:
        print_reports(output.reports)
        from vggedge.core.report import Report

        check = Report.load(output.reports[0]).environment.device_check
        for warning in check.warnings if check else []:
            typer.echo(f"warning: {warning}")
    else:
        print_summary(output.summary)
        typer.echo(f"table: {output.summary_path}")
