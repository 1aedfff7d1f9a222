"""``vggedge optimize``: run one recipe (or all) against the float32 baseline and write reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from vggedge.cli.options import CacheDirOption, OfflineOption, VerboseOption, apply_verbosity
from vggedge.core import defaults
from vggedge.core.cache import default_cache_dir
from vggedge.core.errors import UserError


def optimize_command(
    recipe: Annotated[
        str,
        typer.Option(
            "--recipe",
            "-r",
            help=(
                "Shipped recipe name (see `vggedge recipes`), a .toml path, several "
                "separated by commas, 'all' (every shipped recipe that applies to "
                "the model), or 'auto' (search per-block widths for the fastest or "
                "smallest model within --max-drop: --goal, --search-minutes)."
            ),
        ),
    ] = "int8",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=(
                "'sample' (offline VGG16 trained on scikit-learn digits), 'vgg16' "
                "(Keras ImageNet VGG16), or a .keras/.h5 file (Keras 3 or 2)."
            ),
        ),
    ] = "sample",
    weights: Annotated[
        Optional[str],
        typer.Option(help="For --model vgg16: a weights .h5 file, or 'random' for a sizes-and-latency-only run."),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Labelled images, one subfolder per class (JPEG/PNG), split into "
                "evaluation, calibration and training images; a folder with train/ and "
                "validation/ (or val/) uses those. Default: the sample's digits for "
                "--model sample."
            )
        ),
    ] = None,
    eval_data: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Evaluation images (one subfolder per class): all of them are the "
                "evaluation set, and --data is only for calibration and training."
            )
        ),
    ] = None,
    preprocess: Annotated[
        Optional[str],
        typer.Option(
            help=(
                "What a user model expects, baked into it: none, unit (x/255), tf "
                "(x/127.5-1), caffe (VGG16 ImageNet). Default: none; refused when the "
                "model has its own Rescaling/Normalization."
            )
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the run folders (one per recipe).")] = Path("reports"),
    eval_samples: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help=(
                f"Evaluation images: from --data, default {defaults.EVAL_SAMPLES} (at most half of it); "
                "from an evaluation folder (--eval-data, DIR/validation), default all of them, or this "
                "many in a fixed order."
            ),
            show_default=False,
        ),
    ] = None,
    calibration_samples: Annotated[
        int, typer.Option(min=1, help="Calibration images taken from --data.")
    ] = defaults.CALIBRATION_SAMPLES,
    max_drop: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=100.0,
            help=(
                f"Accuracy budget: top-1 points a result may lose before its status is "
                f"over_budget. Default: the recipe's own, else {defaults.MAX_DROP_PTS}."
            ),
        ),
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed batch-1 runs for latency (after warm-up).")] = defaults.RUNS,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = defaults.WARMUP,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Interpreter threads (default: all cores).")] = None,
    min_agreement: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Top-1 agreement with the Keras source below which a result fails verification."
        ),
    ] = defaults.MIN_AGREEMENT,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed for the fine-tuning steps (shuffling, new layers); step i uses seed+i.")
    ] = defaults.SEED,
    replicas: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help=(
                "Fine-tune on this many devices of this machine with MirroredStrategy. Default: every GPU "
                "(one device without GPUs). Without GPUs, N logical CPU devices run the distributed path "
                "(to check a setup; not faster). Several machines: set TF_CONFIG on each instead."
            ),
            show_default=False,
        ),
    ] = None,
    max_epochs: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help=(
                "Cut every fine-tune to at most N epochs: a quick trial of the recipes on a new model or data "
                "before the full run (accuracy is then usually below what the full recipe keeps). The saved "
                "recipe.toml shows the epochs run."
            ),
            show_default=False,
        ),
    ] = None,
    keep_float: Annotated[
        Optional[str],
        typer.Option(
            help=(
                "Full-int8 recipes: keep some layers in float. 'auto' reverts the layers the int8 error table "
                "ranks worst, one at a time, until the model agrees with its Keras source within the budget "
                "(at most 4); or selectors, comma-separated (block1, head, name:REGEX). Sets keep_float in "
                "each int8 recipe's quantize step (saved in recipe.toml)."
            ),
            show_default=False,
        ),
    ] = None,
    goal: Annotated[
        str,
        typer.Option(help="--recipe auto: what to minimise within --max-drop: latency (measured) or size (the file)."),
    ] = "latency",
    search_minutes: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="--recipe auto: time for the search, before the final fine-tune: the descents take up to two "
            "thirds of it, the validations of their shapes (each one run of the found recipe's fine-tunes) the rest, "
            "and at least one runs.",
        ),
    ] = 20.0,
    search_images: Annotated[
        Optional[int],
        typer.Option(
            min=20,
            help="--recipe auto: training images held apart to rank candidates on (never the evaluation images). "
            "Default: enough that one image is at most a quarter of --max-drop (400 at 1 point), at least 200 and at "
            "most half the training images.",
            show_default=False,
        ),
    ] = None,
    search_data: Annotated[
        Optional[Path],
        typer.Option(
            help="--recipe auto: rank candidates on these labelled images (one subfolder per class) instead of "
            "--search-images carved from the training images: a validation folder your model never trained on. "
            "A model scores better on the images it trained on, and loses less there when it is thinned, so a "
            "carved split understates the drop (measured on the model forms: README).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            help="Class names, one a line in the model's output order, for a model without --data (with data, "
            "its class folders name them). Written to labels.txt and into model.tflite's metadata.",
            show_default=False,
        ),
    ] = None,
    time_on: Annotated[
        Optional[str],
        typer.Option(
            help="--recipe auto: time every candidate on the device itself, through `vggedge bench --serve` "
            "running there (http://HOST:PORT; e.g. through ssh -L 8765:localhost:8765 pi), or predict it from a "
            "latency table the device measured (TABLE.json: `vggedge kit`, then `vggedge bench --profile KIT` on "
            "the device). Default: this machine.",
            show_default=False,
        ),
    ] = None,
    time_on_token: Annotated[
        Optional[str],
        typer.Option(
            envvar="VGGEDGE_BENCH_TOKEN",
            help="--time-on: the bench server's token (it prints it on first start).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    cache_dir: CacheDirOption = None,
    offline: OfflineOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Optimize VGG16 with a recipe: measure the float32 baseline, apply the steps, convert to TFLite,
    verify it against its Keras source, benchmark it, and write reports/<recipe>/ (model.tflite,
    recipe.toml, report.json, report.md).

    Exit code: 0 when every result is ok (verified, within the accuracy budget), 1 when any is not
    (every report is still written), 2 for bad input (nothing written).

    Under TF_CONFIG (TensorFlow's cluster description) every worker runs this same command and
    fine-tunes in lock-step with the others; only the chief (worker 0) writes reports."""
    apply_verbosity(verbose)
    from vggedge.recipe.schema import load_recipe, shipped_recipes

    if preprocess is not None and preprocess not in ("none", "unit", "tf", "caffe"):
        raise UserError(f"--preprocess must be none, unit, tf or caffe. Received: {preprocess!r}")
    auto = recipe.strip() == "auto"
    if goal not in ("latency", "size"):
        raise UserError(f"--goal must be latency or size. Received: {goal!r}")
    names = list(shipped_recipes()) if recipe == "all" else [name.strip() for name in recipe.split(",") if name.strip()]
    if auto and os.environ.get("TF_CONFIG"):
        # The search measures candidates on the chief alone; the other workers would wait for it in vain.
        raise UserError("--recipe auto runs on one machine: unset TF_CONFIG (--replicas N works on this one)")
    if search_data is not None and not auto:
        raise UserError("--search-data ranks the candidates of --recipe auto: use it with --recipe auto")
    if search_data is not None and not search_data.is_dir():
        raise UserError(f"--search-data {search_data} is not a folder of class subfolders")
    if time_on and not auto:
        raise UserError("--time-on times the candidates of --recipe auto: use it with --recipe auto")
    if auto and time_on and time_on.startswith(("http://", "https://")):
        from vggedge.auto.remote import BenchClient

        BenchClient(time_on, time_on_token).check()  # a server that cannot time stops the run before any work
    elif auto and time_on:
        from vggedge.device.latency_table import LatencyTable

        LatencyTable.load(Path(time_on))  # a file that is not a table stops the run before any work
    if auto:
        names = []
    elif not names:
        raise UserError(f"--recipe {recipe!r} names no recipe: give a name (see `vggedge recipes`), a path or 'all'")
    recipes = [load_recipe(name) for name in names]  # validate every recipe file before any work
    repeated = sorted({r.name for r in recipes if [other.name for other in recipes].count(r.name) > 1})
    if repeated:
        raise UserError(
            f"--recipe names {', '.join(map(repr, repeated))} more than once: each recipe writes the run folder of its "
            "name, so give each once (or rename one recipe file's `name`)"
        )
    if keep_float is not None:
        recipes = with_keep_float(recipes, keep_float, auto)

    from vggedge.backend.distribute import start

    # Before anything else touches TensorFlow: devices and a cluster's collectives are fixed at start-up.
    placement = start(replicas, os.environ.get("TF_CONFIG"))

    from vggedge.auto.rules import SearchOptions
    from vggedge.cli.summary import print_reports
    from vggedge.core.report import STATUS_OK
    from vggedge.run.optimize import optimize
    from vggedge.run.options import OptimizeOptions

    search = None
    if auto:
        search = SearchOptions(
            goal=goal,
            max_drop_pts=defaults.MAX_DROP_PTS if max_drop is None else max_drop,
            minutes=search_minutes,
            search_images=search_images,
            threads=threads,
            time_on=time_on,
            time_on_token=time_on_token,
            search_data=search_data,
        )

    options = OptimizeOptions(
        model=model,
        weights=weights,
        preprocess=preprocess,
        data=data,
        eval_data=eval_data,
        out=out,
        eval_samples=eval_samples,
        calibration_samples=calibration_samples,
        runs=runs,
        warmup=warmup,
        threads=threads,
        min_agreement=min_agreement,
        max_drop=max_drop,
        max_epochs=max_epochs,
        auto=search,
        labels=labels,
        skip_inapplicable=recipe == "all",
        progress=not quiet,
        seed=seed,
        cache=cache_dir or default_cache_dir(),
        offline=offline,
        placement=placement,
    )
    stderr = Console(stderr=True)
    reports = optimize(
        recipes, options, on_skip=lambda line: stderr.print(f"skipped {line}", highlight=False, soft_wrap=True)
    )
    if not placement.is_chief:
        stderr.print(
            f"worker {placement.worker_index + 1} of {placement.workers}: fine-tuned in step with the chief, "
            "which writes the reports",
            highlight=False,
        )
        return
    statuses = print_reports(reports)
    if any(status != STATUS_OK for status in statuses):
        raise typer.Exit(1)


def with_keep_float(recipes: list, keep_float: str, auto: bool) -> list:
    """``--keep-float`` applied to every recipe that ends in full int8; exit 2 when none does or the value is
    not 'auto' or selectors."""
    from pydantic import ValidationError

    if auto:
        raise UserError("--keep-float applies to the fixed int8 recipes, not to --recipe auto")
    try:
        updated = [recipe.with_keep_float(keep_float) for recipe in recipes]
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise UserError(f"--keep-float {keep_float!r}: {reason}") from None
    if all(new is old for new, old in zip(updated, recipes, strict=True)):
        chosen = ", ".join(recipe.name for recipe in recipes)
        raise UserError(f"--keep-float applies to recipes that end in full int8 (int8, gap-int8, ...), not to {chosen}")
    return updated
