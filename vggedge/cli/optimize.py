"""``vggedge optimize``: run one recipe (or all) against the float32 baseline and write reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from vggedge.errors import UserError

console = Console(stderr=True)


def optimize_command(
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Shipped recipe name (see `vggedge recipes`), a .toml path, several separated by commas, or 'all'.")] = "int8",
    model: Annotated[str, typer.Option("--model", "-m", help="'sample' (offline VGG16 trained on scikit-learn digits), 'vgg16' (Keras ImageNet VGG16), or a .keras/.h5 file.")] = "sample",
    weights: Annotated[Optional[str], typer.Option(help="For --model vgg16: a weights .h5 file, or 'random' for a sizes-and-latency-only run.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Labelled images, one subfolder per class (JPEG/PNG). Default: the sample's digits for --model sample.")] = None,
    preprocess: Annotated[Optional[str], typer.Option(help="Preprocessing to bake into a user model: none, unit (x/255), tf (x/127.5-1), caffe (VGG16 ImageNet).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the run folders (one per recipe).")] = Path("reports"),
    eval_samples: Annotated[int, typer.Option(min=1, help="Evaluation images taken from --data.")] = 500,
    calibration_samples: Annotated[int, typer.Option(min=1, help="Calibration images taken from --data.")] = 100,
    runs: Annotated[int, typer.Option(min=1, help="Timed batch-1 runs for latency (after warm-up).")] = 30,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = 3,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: all cores).")] = None,
    min_agreement: Annotated[float, typer.Option(min=0.0, max=1.0, help="Top-1 agreement with the Keras source below which a result is marked failed.")] = 0.97,
    seed: Annotated[int, typer.Option(min=0, help="Seed for the fine-tuning steps (shuffling, new layers); step i uses seed+i.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Optimize VGG16 with a recipe: measure the float32 baseline, apply the steps, convert to TFLite,
    verify it against its Keras source, benchmark it, and write reports/<recipe>/ (model.tflite,
    recipe.toml, report.json, report.md)."""
    from vggedge.recipe import load_recipe, shipped_recipes

    if preprocess is not None and preprocess not in ("none", "unit", "tf", "caffe"):
        raise UserError(f"--preprocess must be none, unit, tf or caffe. Received: {preprocess!r}")
    names = list(shipped_recipes()) if recipe == "all" else [name.strip() for name in recipe.split(",") if name.strip()]
    recipes = [load_recipe(name) for name in names]  # validate every recipe before any work

    from vggedge.pipeline import OptimizeOptions, optimize
    from vggedge.cli.summary import print_reports

    options = OptimizeOptions(
        model=model, weights=weights, preprocess=preprocess, data=data, out=out, eval_samples=eval_samples,
        calibration_samples=calibration_samples, runs=runs, warmup=warmup, threads=threads,
        min_agreement=min_agreement, progress=not quiet, seed=seed,
    )
    reports = optimize(recipes, options)
    print_reports(reports)
