"""``vggedge kit MODEL``: the profiling kit for a model, to be timed on the device by ``vggedge bench --profile``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vggedge.cli.options import MODEL_ARGUMENT_HELP, CacheDirOption, OfflineOption, VerboseOption, apply_verbosity
from vggedge.core.cache import default_cache_dir
from vggedge.core.errors import UserError


def kit_command(
    model: Annotated[str, typer.Argument(help=MODEL_ARGUMENT_HELP)],
    out: Annotated[Path, typer.Option(help="The kit's folder (created; must be empty or absent).")] = Path("kit"),
    keep: Annotated[
        Optional[str],
        typer.Option(
            help="Only these kept fractions of each block's filters (e.g. 1,3/4,1/2,1/4): fewer files, and the "
            "search then visits only these levels. Default: all eight, 1 down to 1/8.",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[Optional[str], typer.Option(help="For vgg16: a weights .h5 file, or 'random'.")] = None,
    preprocess: Annotated[Optional[str], typer.Option(help="As for optimize: none, unit, tf, caffe or torch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    cache_dir: CacheDirOption = None,
    offline: OfflineOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Make a model's profiling kit, for a latency table measured on the device.

    One int8 TFLite file per conv layer (with what follows it) at every
    input and output width the search's per-block levels give it, the head at every width (kept and GAP),
    and whole models to set and check the sum. Copy the folder to the device, run `vggedge bench --profile
    KIT` there (no TensorFlow needed), and give the table it writes to `optimize --recipe auto --time-on`."""
    apply_verbosity(verbose)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder: give a new one")
    from vggedge.auto.kit import build_kit, parse_keep
    from vggedge.models.loading import load_baseline

    levels = parse_keep(keep) if keep else None
    if model == "sample":
        from vggedge.models.sample import load_sample_dataset

        cache = cache_dir or default_cache_dir()
        baseline = load_baseline("sample", None, None, load_sample_dataset(cache, progress=False), False, cache)
    else:
        baseline = load_baseline(model, weights, preprocess, progress=False, offline=offline)
    from vggedge.core.progress import LineProgress

    lines = None if quiet else LineProgress("Making the kit", None, " files")
    try:
        manifest = build_kit(
            baseline.model, out, levels, progress=(lambda done, total: lines.advance()) if lines else None
        )
    except BaseException:
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # nothing half-written: a kit is whole or absent
        raise
    if lines:
        lines.finish()
    files = len(manifest["entries"]) + len(manifest["wholes"])
    typer.echo(
        f"kit: {out} ({files} files: {len(manifest['entries'])} pieces, {len(manifest['wholes'])} whole models). "
        f"On the device: vggedge bench --profile {out} --threads N"
    )
