"""``vggedge bench MODEL.tflite …``: the device-side benchmark (no TensorFlow needed), and ``--serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vggedge.cli.options import (
    BUDGET,
    DATA,
    OUTPUT,
    PROFILE,
    SERVER,
    TIMING,
    VerboseOption,
    apply_verbosity,
)
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


ModelsOption = Annotated[
    Optional[list[Path]],
    typer.Argument(
        help="One or more .tflite files, or a run folder of `vggedge optimize` (every `RECIPE/model.tflite` "
        "in it), ideally inside the run folders `optimize` wrote.",
        show_default=False,
    ),
]

DataOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=DATA,
        help=(
            "Labelled images, one subfolder per class (e.g. "
            "reports/sklearn-digits-32-eval); when the run folder names its "
            "evaluation images, only those are used, else every image."
        ),
    ),
]

ThreadsOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=TIMING,
        help="Interpreter threads, one count or several: 1,2,4 (default: all cores).",
        show_default=False,
    ),
]

RunsOption = Annotated[
    int,
    typer.Option(
        rich_help_panel=TIMING,
        min=0,
        help="Timed batch-1 runs of each model × threads, interleaved (none under emulation).",
    ),
]

WarmupOption = Annotated[
    int, typer.Option(rich_help_panel=TIMING, min=0, help="Untimed warm-up runs of each interpreter.")
]

CooldownOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=TIMING, min=0, envvar="VGGEDGE_COOLDOWN", help="Seconds of rest before each model's burst."
    ),
]

BurstRunsOption = Annotated[
    int, typer.Option(rich_help_panel=TIMING, min=0, help="Timed runs right after the cool-down: the burst p50.")
]

SustainOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=TIMING,
        min=0,
        envvar="VGGEDGE_SUSTAIN",
        help="Seconds of interleaved load before the timed runs: the sustained p50 comes after.",
    ),
]

MaxDropOption = Annotated[
    Optional[float],
    typer.Option(
        rich_help_panel=BUDGET,
        min=0,
        help="Accuracy budget in top-1 points for the recommendation (default: each report's).",
    ),
]

OutOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=OUTPUT,
        help="Report folder (one model: default `MODEL_FOLDER/bench-DEVICE`; several: a folder "
        "of `MODEL-Nt` reports and bench.md, default `bench-DEVICE` in the run folder).",
    ),
]

RuntimeOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=TIMING,
        envvar="VGGEDGE_RUNTIME",
        help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow.",
    ),
]

ServeOption = Annotated[
    bool,
    typer.Option(
        "--serve",
        rich_help_panel=SERVER,
        help="Run the bench server instead: time TFLite files sent over HTTP (token-checked) for "
        "`optimize --recipe auto --time-on http://HOST:PORT`.",
    ),
]

ProfileOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=PROFILE,
        help="Time a profiling kit instead (a folder `vggedge kit MODEL` made): every piece at every width, "
        "written as the latency table for `optimize --recipe auto --time-on TABLE.json` (default "
        "`KIT/table-Nt.json`, or --out).",
        show_default=False,
    ),
]

ProfileSecondsOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=PROFILE, min=0.0, help="--profile: seconds of timed runs per file (after the warm-up)."
    ),
]

HostOption = Annotated[
    str,
    typer.Option(rich_help_panel=SERVER, help="--serve: the address to listen on (loopback unless you say otherwise)."),
]

PortOption = Annotated[
    int, typer.Option(rich_help_panel=SERVER, min=0, max=65535, help="--serve: the port (0: any free one).")
]

TokenFileOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=SERVER,
        help="--serve: where the access token is kept (created with mode 0600 on first start; default "
        "~/.config/vggedge/bench-token).",
    ),
]

MaxMbOption = Annotated[
    float, typer.Option(rich_help_panel=SERVER, min=0.001, help="--serve: the largest model file accepted, in MB.")
]
MaxMemoryMbOption = Annotated[
    Optional[float],
    typer.Option(
        rich_help_panel=SERVER,
        min=16,
        help="--serve: the memory one timing job may take beyond its own start-up, in MB (it runs in a child "
        "process with that limit). Default: three quarters of the board's MemAvailable.",
        show_default=False,
    ),
]
MaxJobSecondsOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=SERVER, min=1, help="--serve: the longest one timing job may run before it is stopped (422)."
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        rich_help_panel=SERVER,
        min=1,
        max=1024,
        help="--serve: connections at once; one still sending headers gives way.",
    ),
]

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT, help="No progress bars.")]


def bench_command(
    models: ModelsOption = None,
    data: DataOption = None,
    threads: ThreadsOption = None,
    runs: RunsOption = defaults.RUNS,
    warmup: WarmupOption = defaults.WARMUP,
    cooldown: CooldownOption = defaults.COOLDOWN_S,
    burst_runs: BurstRunsOption = defaults.BURST_RUNS,
    sustain: SustainOption = defaults.SUSTAIN_S,
    max_drop: MaxDropOption = None,
    out: OutOption = None,
    runtime: RuntimeOption = None,
    serve: ServeOption = False,
    profile: ProfileOption = None,
    profile_seconds: ProfileSecondsOption = 0.25,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8765,
    token_file: TokenFileOption = None,
    max_mb: MaxMbOption = 600.0,
    max_memory_mb: MaxMemoryMbOption = None,
    max_job_seconds: MaxJobSecondsOption = 300.0,
    max_connections: MaxConnectionsOption = 8,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Benchmark TFLite models on this device, serve timings, or profile a kit.

    Accuracy, agreement with the baseline, burst and sustained
    latency at each thread count, and the board's state (governor, temperature, throttling, memory). Writes a
    report.json per model × threads in the same schema as `optimize`; for several, one table and the fastest
    model × threads within the accuracy budget."""
    apply_verbosity(verbose)
    counts = parse_threads(threads)
    from vggedge.device.bench import check_mode

    check_mode(models, serve, profile, counts)
    if not serve:  # a model that loops for ever is stopped in one line, and Ctrl-C works inside a call
        from vggedge.device import call_guard

        call_guard.install()
    if profile is not None:
        profile_command(profile, counts, runtime, profile_seconds, runs, warmup, out, quiet)
    elif serve:
        from vggedge.device.server import ServerOptions, serve_forever

        limits = {"max_memory_mb": max_memory_mb, "max_job_s": max_job_seconds, "max_connections": max_connections}
        serve_forever(ServerOptions(host, port, token_file, int(max_mb * 1e6), counts, runtime, runs, warmup, **limits))
    else:
        timing = {"cooldown_s": cooldown, "sustain_s": sustain, "burst_runs": burst_runs}
        from vggedge.api import bench

        output = bench(models, data, threads=counts, runs=runs, warmup=warmup, out=out, runtime=runtime,
                       max_drop=max_drop, progress=not quiet, **timing)  # fmt: skip
        print_bench(output)


def profile_command(
    kit: Path, counts: list[int] | None, runtime: str | None, seconds: float, runs: int, warmup: int,
    out: Path | None, quiet: bool,
) -> None:  # fmt: skip
    """``bench --profile KIT``: time the kit's files, write the latency table, print its checks."""
    from vggedge.device.latency_table import LatencyTable
    from vggedge.device.profile import ProfileOptions, profile

    options = ProfileOptions(
        kit=kit, threads=counts[0] if counts else None, runtime=runtime, seconds=seconds, runs=runs,
        warmup=warmup, out=out, progress=not quiet,
    )  # fmt: skip
    table = profile(options)
    measured = LatencyTable.load(table)
    for check in measured.checks:
        typer.echo(
            f"check: blocks at levels {check['levels']} ({check['head']} head): predicted "
            f"{check['predicted_ms']:.3f} ms, measured {check['measured_ms']:.3f} ms ({check['error_pct']:+.1f}%)"
        )
    for warning in measured.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"table: {table} (for `vggedge optimize --recipe auto --time-on {table}`)")


def print_bench(output) -> None:  # noqa: ANN001 - a vggedge.device.bench.BenchOutput
    """One model: its report and the board's warnings; several: the table and the recommendation."""
    from vggedge.cli.summary import print_reports
    from vggedge.core.report import Report
    from vggedge.device.summary import print_summary

    if output.summary is None:
        print_reports(output.reports)
        check = Report.load(output.reports[0]).environment.device_check
        for warning in check.warnings if check else []:
            typer.echo(f"warning: {warning}")
    else:
        print_summary(output.summary)
        typer.echo(f"table: {output.summary_path}")
