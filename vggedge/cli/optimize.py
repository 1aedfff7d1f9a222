"""``vggedge optimize``: run one recipe (or all) against the float32 baseline and write reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from vggedge.cli.options import (
    BUDGET,
    DATA,
    MODEL,
    OUTPUT,
    SEARCH,
    TIMING,
    TRAINING,
    CacheDirOption,
    OfflineOption,
    VerboseOption,
    apply_verbosity,
)
from vggedge.core import defaults

RecipeOption = Annotated[
    str,
    typer.Option(
        "--recipe",
        "-r",
        rich_help_panel=MODEL,
        help=(
            "Shipped recipe name (see `vggedge recipes`), a .toml path, several "
            "separated by commas, 'all' (every shipped recipe that applies to "
            "the model), or 'auto' (search per-block widths for the fastest or "
            "smallest model within --max-drop: --goal, --search-minutes)."
        ),
    ),
]

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        rich_help_panel=MODEL,
        help=(
            "'sample' (offline VGG16 trained on scikit-learn digits), 'vgg16' "
            "(Keras ImageNet VGG16), or a .keras/.h5 file (Keras 3 or 2)."
        ),
    ),
]

WeightsOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=MODEL,
        help="For --model vgg16: a weights .h5 file, or 'random' for a sizes-and-latency-only run.",
    ),
]

DataOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=DATA,
        help=(
            "Labelled images, one subfolder per class (JPEG/PNG), split into "
            "evaluation, calibration and training images; a folder with train/ and "
            "validation/ (or val/) uses those. Default: the sample's digits for "
            "--model sample."
        ),
    ),
]

EvalDataOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=DATA,
        help=(
            "Evaluation images (one subfolder per class): all of them are the "
            "evaluation set, and --data is only for calibration and training."
        ),
    ),
]

PreprocessOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=MODEL,
        help=(
            "What a user model expects, baked into it: none, unit (x/255), tf "
            "(x/127.5-1), caffe (VGG16 ImageNet). Default: none; refused when the "
            "model has its own Rescaling/Normalization."
        ),
    ),
]

ResizeOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=DATA,
        help="How pictures are fitted to the model's square input, for training, evaluation and calibration: "
        "stretch (the whole picture, its aspect changed), center-crop (the largest centred square) or letterbox "
        "(the whole picture on black). Recorded in the model: predict and Classifier resize the same way. "
        "Default: the recipe file's own (a replayed recipe.toml), else stretch.",
        show_default=False,
    ),
]
EvalSamplesOption = Annotated[
    Optional[int],
    typer.Option(
        rich_help_panel=DATA,
        min=1,
        help=(
            f"Evaluation images: from --data, default {defaults.EVAL_SAMPLES} (at most half of it); "
            "from an evaluation folder (--eval-data, DIR/validation), default all of them, or this "
            "many in a fixed order."
        ),
        show_default=False,
    ),
]

CalibrationSamplesOption = Annotated[
    int, typer.Option(rich_help_panel=DATA, min=1, help="Calibration images taken from --data.")
]

MaxDropOption = Annotated[
    Optional[float],
    typer.Option(
        rich_help_panel=BUDGET,
        min=0.0,
        max=100.0,
        help=(
            f"Accuracy budget: top-1 points a result may lose before its status is "
            f"over_budget. Default: the recipe's own, else {defaults.MAX_DROP_PTS}."
        ),
    ),
]

RunsOption = Annotated[
    int, typer.Option(rich_help_panel=TIMING, min=1, help="Timed batch-1 runs for latency (after warm-up).")
]

WarmupOption = Annotated[int, typer.Option(rich_help_panel=TIMING, min=0, help="Untimed warm-up runs.")]

ThreadsOption = Annotated[
    Optional[int], typer.Option(rich_help_panel=TIMING, min=1, help="Interpreter threads (default: all cores).")
]

MinAgreementOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=BUDGET,
        min=0.0,
        max=1.0,
        help="Top-1 agreement with the Keras source below which a result fails verification.",
    ),
]

SeedOption = Annotated[
    int,
    typer.Option(
        rich_help_panel=TRAINING,
        min=0,
        help="Seed for the fine-tuning steps (shuffling, new layers); step i uses seed+i.",
    ),
]

ReplicasOption = Annotated[
    Optional[int],
    typer.Option(
        rich_help_panel=TRAINING,
        min=1,
        help=(
            "Fine-tune on this many devices of this machine with MirroredStrategy. Default: every GPU "
            "(one device without GPUs). Without GPUs, N logical CPU devices run the distributed path "
            "(to check a setup; not faster). Several machines: set TF_CONFIG on each instead."
        ),
        show_default=False,
    ),
]

MaxEpochsOption = Annotated[
    Optional[int],
    typer.Option(
        rich_help_panel=TRAINING,
        min=1,
        help=(
            "Cut every fine-tune to at most N epochs: a quick trial of the recipes on a new model or data "
            "before the full run (accuracy is then usually below what the full recipe keeps). The saved "
            "recipe.toml shows the epochs run."
        ),
        show_default=False,
    ),
]

KeepFloatOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=BUDGET,
        help=(
            "Full-int8 recipes: keep some layers in float. 'auto' reverts the layers the int8 error table "
            "ranks worst, one at a time, until the model agrees with its Keras source within the budget "
            "(at most 4); or selectors, comma-separated (block1, head, name:REGEX). Sets keep_float in "
            "each int8 recipe's quantize step (saved in recipe.toml)."
        ),
        show_default=False,
    ),
]

RemediesOption = Annotated[
    bool,
    typer.Option(
        "--remedies/--no-remedies",
        rich_help_panel=BUDGET,
        help=(
            "When a recipe misses verification or its budget, try what can help, in order: its int8 worst layers "
            "kept in float, then one epoch of QAT (both when the Keras model before conversion is within budget), "
            "post-training int8 for a QAT recipe, then every cut (filters, sparsity) halved; keep the first that "
            "ends ok. Every try is in the report's Remedies section."
        ),
    ),
]

RemedyMinutesOption = Annotated[
    float,
    typer.Option(
        rich_help_panel=BUDGET,
        help="Time cap for all remedies of one recipe together, in minutes; a try that would not fit is skipped.",
    ),
]

GoalOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=SEARCH,
        help="What to minimise within --max-drop: latency (measured; the default) or size (the file).",
        show_default=False,
    ),
]

SearchMinutesOption = Annotated[
    Optional[float],
    typer.Option(
        rich_help_panel=SEARCH,
        min=0.1,
        help="Minutes for the search before the final fine-tune (default 20): the descents take up to two "
        "thirds, the validations of their shapes (each one run of the found recipe's fine-tunes) the rest, "
        "and at least one runs.",
        show_default=False,
    ),
]

SearchImagesOption = Annotated[
    Optional[int],
    typer.Option(
        rich_help_panel=SEARCH,
        min=20,
        help="--recipe auto: training images held apart to rank candidates on (never the evaluation images). "
        "Default: enough that one image is at most a quarter of --max-drop (400 at 1 point), at least 200 and at "
        "most half the training images.",
        show_default=False,
    ),
]

SearchDataOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=SEARCH,
        help="--recipe auto: rank candidates on these labelled images (one subfolder per class) instead of "
        "--search-images carved from the training images: a validation folder your model never trained on. "
        "A model scores better on the images it trained on, and loses less there when it is thinned, so a "
        "carved split understates the drop (measured on the model forms: README).",
        show_default=False,
    ),
]

LabelsOption = Annotated[
    Optional[Path],
    typer.Option(
        rich_help_panel=MODEL,
        help="Class names, one a line in the model's output order, for a model without --data (with data, "
        "its class folders name them). Written to labels.txt and into model.tflite's metadata.",
        show_default=False,
    ),
]

TimeOnOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=SEARCH,
        help="--recipe auto: time every candidate on the device itself, through `vggedge bench --serve` "
        "running there (http://HOST:PORT; e.g. through ssh -L 8765:localhost:8765 pi), or predict it from a "
        "latency table the device measured (TABLE.json: `vggedge kit`, then `vggedge bench --profile KIT` on "
        "the device). Default: this machine.",
        show_default=False,
    ),
]

TimeOnTokenOption = Annotated[
    Optional[str],
    typer.Option(
        rich_help_panel=SEARCH,
        envvar="VGGEDGE_BENCH_TOKEN",
        help="--time-on: the bench server's token (it prints it on first start).",
        show_default=False,
    ),
]

OutOption = Annotated[Path, typer.Option(rich_help_panel=OUTPUT, help="Folder for the run folders (one per recipe).")]

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT, help="No progress bars.")]


def optimize_command(
    recipe: RecipeOption = "int8",
    model: ModelOption = "sample",
    weights: WeightsOption = None,
    data: DataOption = None,
    eval_data: EvalDataOption = None,
    preprocess: PreprocessOption = None,
    eval_samples: EvalSamplesOption = None,
    resize: ResizeOption = None,
    calibration_samples: CalibrationSamplesOption = defaults.CALIBRATION_SAMPLES,
    max_drop: MaxDropOption = None,
    runs: RunsOption = defaults.RUNS,
    warmup: WarmupOption = defaults.WARMUP,
    threads: ThreadsOption = None,
    min_agreement: MinAgreementOption = defaults.MIN_AGREEMENT,
    seed: SeedOption = defaults.SEED,
    replicas: ReplicasOption = None,
    max_epochs: MaxEpochsOption = None,
    keep_float: KeepFloatOption = None,
    remedies: RemediesOption = True,
    remedy_minutes: RemedyMinutesOption = defaults.REMEDY_MINUTES,
    goal: GoalOption = None,
    search_minutes: SearchMinutesOption = None,
    search_images: SearchImagesOption = None,
    search_data: SearchDataOption = None,
    labels: LabelsOption = None,
    time_on: TimeOnOption = None,
    time_on_token: TimeOnTokenOption = None,
    out: OutOption = Path("reports"),
    quiet: QuietOption = False,
    cache_dir: CacheDirOption = None,
    offline: OfflineOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Optimize a VGG model with recipes and write a verified TFLite model and a report for each.

    Measures the float32 baseline once, applies each recipe's steps, converts to TFLite, verifies it against its
    Keras source, benchmarks it, and writes reports/RECIPE/ (model.tflite, recipe.toml, report.json, report.md).

    Exit code: 0 when every result is ok (verified, within the accuracy budget), 1 when any is not (every report
    is still written), 2 for bad input (nothing written). Under TF_CONFIG every worker runs this same command and
    fine-tunes in lock-step with the others; only the chief (worker 0) writes reports.
    """
    apply_verbosity(verbose)
    from vggedge.api import optimize
    from vggedge.cli.summary import print_reports

    search = {"goal": goal, "search_minutes": search_minutes, "search_images": search_images}
    search |= {"search_data": search_data, "time_on": time_on, "time_on_token": time_on_token}
    stderr = Console(stderr=True)
    results = optimize(
        model,
        recipe,
        data,
        out=out,
        eval_data=eval_data,
        weights=weights,
        preprocess=preprocess,
        labels=labels,
        resize=resize,
        eval_samples=eval_samples,
        calibration_samples=calibration_samples,
        runs=runs,
        warmup=warmup,
        threads=threads,
        min_agreement=min_agreement,
        max_drop=max_drop,
        max_epochs=max_epochs,
        keep_float=keep_float,
        remedies=remedies,
        remedy_minutes=remedy_minutes,
        seed=seed,
        replicas=replicas,
        cache=cache_dir,
        offline=offline,
        progress=not quiet,
        on_skip=lambda line: stderr.print(f"skipped {line}", highlight=False, soft_wrap=True),
        **search,
    )
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
