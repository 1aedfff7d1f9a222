"""``vggedge bench MODEL.tflite …``: the device-side benchmark (no TensorFlow needed), and ``--serve``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vggedge.cli.options import VERBOSE, apply_verbosity, command
from vggedge.core.keywords import BenchInputs, BenchKeywords, ProfileKeywords, ServeKeywords, thread_counts

MODELS = inspect.Parameter(
    "models",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Optional[list[Path]],  # noqa: UP007 - typer reads Optional
        typer.Argument(
            help="One or more model files (.tflite, .onnx, or an OpenVINO .xml with its .bin), or a run folder of "
            "`vggedge optimize` (every file of every `RECIPE/` in it), ideally inside the run folders `optimize` "
            "wrote.",
            show_default=False,
        ),
    ],
)


def bench_command(**asked: Any) -> None:  # noqa: ANN401 - one keyword per declared option
    """Benchmark models (TFLite, ONNX, OpenVINO IR) on this device, serve timings, or profile a kit.

    Accuracy, agreement with the baseline, burst and sustained
    latency at each thread count, and the board's state (governor, temperature, throttling, memory). Writes a
    report.json per model × threads in the same schema as `optimize`; for several, one table and the fastest
    model × threads within the accuracy budget."""
    apply_verbosity(asked.pop("verbose"))
    models, serve, profile = asked.pop("models"), asked.pop("serve"), asked.pop("profile")
    counts = thread_counts(asked["threads"])
    from vggedge.device.bench import check_mode

    check_mode(models, serve, profile, counts)
    if not serve:  # a model that loops for ever is stopped in one line, and Ctrl-C works inside a call
        from vggedge.device import call_guard

        call_guard.install()
    if profile is not None:
        profile_command(profile, counts, asked)
    elif serve:
        from vggedge.device.server import ServerOptions, serve_forever

        serve_forever(ServerOptions(
            asked["host"], asked["port"], asked["token_file"], int(asked["max_mb"] * 1e6), counts, asked["runtime"],
            asked["runs"], asked["warmup"], max_memory_mb=asked["max_memory_mb"],
            max_job_s=asked["max_job_seconds"], max_connections=asked["max_connections"],
        ))  # fmt: skip
    else:
        from vggedge.api import bench

        for name in [*ServeKeywords.__annotations__, *ProfileKeywords.__annotations__]:
            asked.pop(name, None)
        print_bench(bench(models, asked.pop("data"), **asked))


def profile_command(kit: Path, counts: list[int] | None, asked: dict) -> None:
    """``bench --profile KIT``: time the kit's files, write the latency table, print its checks."""
    from vggedge.device.latency_table import LatencyTable
    from vggedge.device.profile import ProfileOptions, profile

    options = ProfileOptions(
        kit=kit, threads=counts[0] if counts else None, runtime=asked["runtime"], seconds=asked["profile_seconds"],
        runs=asked["runs"], warmup=asked["warmup"], out=asked["out"], progress=asked["progress"],
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


command(bench_command, BenchInputs, BenchKeywords, ServeKeywords, ProfileKeywords, extra=(MODELS, VERBOSE))
