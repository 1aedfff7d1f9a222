"""Every option of ``optimize`` (and ``search``) and ``bench``, declared once: its type, default, help and panel.

Each option is one field of a ``TypedDict`` annotated with an :class:`Opt`. From these declarations follow the
Python API's keywords (``vggedge.optimize(**options: Unpack[OptimizeKeywords])``, its runtime signature and the
check of unknown keywords), the command line's options (``vggedge.cli.build``), and the docs' option tables.
Adding an option is one field here and the code that uses its value.

No TensorFlow, no pydantic: the device side reads the bench options too.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from vggedge.core import defaults
from vggedge.core.errors import UserError

# Help panels: `--help` groups a command's options under these headings, the docs' tables by them too.
MODEL = "Model"
DATA = "Data"
BUDGET = "Budget and verification"
TIMING = "Timing"
TRAINING = "Fine-tuning"
SEARCH = "Automatic search (--recipe auto)"
OUTPUT = "Output"
SERVER = "Bench server (--serve)"
PROFILE = "Latency table (--profile)"
GENERAL = "Options"


@dataclasses.dataclass(frozen=True)
class Opt:
    """How one option is offered: the API keyword's default and the command line's flags, help and panel.

    ``flags`` default to ``--the-name``; ``metavar`` names the value in ``--help`` (none for a flag);
    ``cli_default`` is the command line's default where it differs from the API's (``None`` there: "chosen
    later", said in ``help``). ``envvar`` is read by the command line only.
    """

    help: str
    panel: str
    default: Any = None
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    min: float | None = None
    max: float | None = None
    envvar: str | None = None


class OptimizeInputs(TypedDict, total=False):
    """What ``optimize`` works on: positional in the API (``optimize(model, recipe, data)``), options at the CLI."""

    recipe: Annotated[
        str,
        Opt(
            "Shipped recipe name (see `vggedge recipes`), a .toml path, several separated by commas, 'all' (every "
            "shipped recipe that applies to the model), or 'auto' (search per-block widths for the fastest or smallest "
            "model within --max-drop: --goal, --search-minutes).",
            MODEL,
            "int8",
            ("--recipe", "-r"),
            "NAME",
        ),
    ]
    model: Annotated[
        str,
        Opt(
            "'sample' (offline VGG16 trained on scikit-learn digits), 'vgg16' (Keras ImageNet VGG16), a .keras/.h5 "
            "file (Keras 3 or 2) or SavedModel folder, or a PyTorch (.safetensors, .pth, .pt) or ONNX (.onnx) VGG, "
            "translated and checked first; in Python also a keras.Model.",
            MODEL,
            "sample",
            ("--model", "-m"),
            "MODEL",
        ),
    ]
    data: Annotated[
        Path | str | None,
        Opt(
            "Labelled images, one subfolder per class (JPEG/PNG), split into evaluation, calibration and training "
            "images; a folder with train/ and validation/ (or val/) uses those. Default: the sample's digits for "
            "--model sample.",
            DATA,
            metavar="DIR",
        ),
    ]


class OptimizeKeywords(TypedDict, total=False):
    """The keywords of ``vggedge.optimize`` and ``vggedge.search``, the options of ``vggedge optimize``."""

    weights: Annotated[
        str | None,
        Opt(
            "For --model vgg16: a weights .h5 file, or 'random' for a sizes-and-latency-only run.",
            MODEL,
            metavar="FILE",
        ),
    ]
    preprocess: Annotated[
        str | None,
        Opt(
            "What a user model expects, baked into it: none, unit (x/255), tf (x/127.5-1), caffe (VGG16 ImageNet), "
            "torch (torchvision's ImageNet mean and std). Default: none; torch for a PyTorch or ONNX file; refused "
            "when the model has its own Rescaling/Normalization.",
            MODEL,
            metavar="MODE",
        ),
    ]
    labels: Annotated[
        Path | str | None,
        Opt(
            "Class names, one a line in the model's output order, for a model without --data (with data, its class "
            "folders name them). Written to labels.txt and into model.tflite's metadata.",
            MODEL,
            metavar="FILE",
        ),
    ]
    eval_data: Annotated[
        Path | str | None,
        Opt(
            "Evaluation images (one subfolder per class): all of them are the evaluation set, and --data is only "
            "for calibration and training.",
            DATA,
            metavar="DIR",
        ),
    ]
    eval_samples: Annotated[
        int | None,
        Opt(
            f"Evaluation images: from --data, default {defaults.EVAL_SAMPLES} (at most half of it); from an "
            "evaluation folder (--eval-data, DIR/validation), default all of them, or this many in a fixed order.",
            DATA,
            metavar="N",
            min=1,
        ),
    ]
    resize: Annotated[
        str | None,
        Opt(
            "How pictures are fitted to the model's square input, for training, evaluation and calibration: stretch "
            "(the whole picture, its aspect changed), center-crop (the largest centred square) or letterbox (the "
            "whole picture on black). Recorded in the model: predict and Classifier resize the same way. Default: "
            "the recipe file's own (a replayed recipe.toml), else stretch.",
            DATA,
            metavar="MODE",
        ),
    ]
    calibration_samples: Annotated[
        int, Opt("Calibration images taken from --data.", DATA, defaults.CALIBRATION_SAMPLES, metavar="N", min=1)
    ]
    max_drop: Annotated[
        float | None,
        Opt(
            "Accuracy budget: top-1 points a result may lose before its status is over_budget. Default: the "
            f"recipe's own, else {defaults.MAX_DROP_PTS}.",
            BUDGET,
            metavar="POINTS",
            min=0.0,
            max=100.0,
        ),
    ]
    min_agreement: Annotated[
        float,
        Opt(
            "Top-1 agreement with the Keras source below which a result fails verification.",
            BUDGET,
            defaults.MIN_AGREEMENT,
            metavar="FRACTION",
            min=0.0,
            max=1.0,
        ),
    ]
    keep_float: Annotated[
        str | None,
        Opt(
            "Full-int8 recipes: keep some layers in float. 'auto' reverts the layers the int8 error table ranks "
            "worst, one at a time, until the model agrees with its Keras source within the budget (at most 4); or "
            "selectors, comma-separated (block1, head, name:REGEX). Sets keep_float in each int8 recipe's quantize "
            "step (saved in recipe.toml).",
            BUDGET,
            metavar="SELECTORS",
        ),
    ]
    remedies: Annotated[
        bool,
        Opt(
            "When a recipe misses verification or its budget, try what can help, in order: its int8 worst layers "
            "kept in float, then one epoch of QAT (both when the Keras model before conversion is within budget), "
            "post-training int8 for a QAT recipe, then every cut (filters, sparsity) halved; keep the first that "
            "ends ok. Every try is in the report's Remedies section.",
            BUDGET,
            True,
            ("--remedies/--no-remedies",),
        ),
    ]
    remedy_minutes: Annotated[
        float,
        Opt(
            "Time cap for all remedies of one recipe together, in minutes; a try that would not fit is skipped.",
            BUDGET,
            defaults.REMEDY_MINUTES,
            metavar="MINUTES",
            min=0.0,
        ),
    ]
    runs: Annotated[
        int, Opt("Timed batch-1 runs for latency (after warm-up).", TIMING, defaults.RUNS, metavar="N", min=1)
    ]
    warmup: Annotated[int, Opt("Untimed warm-up runs.", TIMING, defaults.WARMUP, metavar="N", min=0)]
    threads: Annotated[int | None, Opt("Interpreter threads (default: all cores).", TIMING, metavar="N", min=1)]
    seed: Annotated[
        int,
        Opt(
            "Seed for the fine-tuning steps (shuffling, new layers); step i uses seed+i.",
            TRAINING,
            defaults.SEED,
            metavar="N",
            min=0,
        ),
    ]
    replicas: Annotated[
        int | None,
        Opt(
            "Fine-tune on this many devices of this machine with MirroredStrategy. Default: every GPU (one device "
            "without GPUs). Without GPUs, N logical CPU devices run the distributed path (to check a setup; not "
            "faster). Several machines: set TF_CONFIG on each instead.",
            TRAINING,
            metavar="N",
            min=1,
        ),
    ]
    max_epochs: Annotated[
        int | None,
        Opt(
            "Cut every fine-tune to at most N epochs: a quick trial of the recipes on a new model or data before the "
            "full run (accuracy is then usually below what the full recipe keeps). The saved recipe.toml shows the "
            "epochs run.",
            TRAINING,
            metavar="N",
            min=1,
        ),
    ]
    goal: Annotated[
        str | None,
        Opt(
            "What to minimise within --max-drop: latency (measured; the default) or size (the file).",
            SEARCH,
            metavar="GOAL",
        ),
    ]
    search_minutes: Annotated[
        float | None,
        Opt(
            "Minutes for the search before the final fine-tune (default 20): the descents take up to two thirds, "
            "the validations of their shapes (each one run of the found recipe's fine-tunes) the rest, and at least "
            "one runs.",
            SEARCH,
            metavar="MINUTES",
            min=0.1,
        ),
    ]
    search_images: Annotated[
        int | None,
        Opt(
            "Training images held apart to rank candidates on (never the evaluation images). Default: enough that "
            "one image is at most a quarter of --max-drop (400 at 1 point), at least 200 and at most half the "
            "training images.",
            SEARCH,
            metavar="N",
            min=20,
        ),
    ]
    search_data: Annotated[
        Path | str | None,
        Opt(
            "Rank candidates on these labelled images (one subfolder per class) instead of --search-images carved "
            "from the training images: a validation folder your model never trained on. A model scores better on "
            "the images it trained on, and loses less there when it is thinned, so a carved split understates the "
            "drop.",
            SEARCH,
            metavar="DIR",
        ),
    ]
    time_on: Annotated[
        str | None,
        Opt(
            "Time every candidate on the device itself, through `vggedge bench --serve` running there "
            "(http://HOST:PORT; e.g. through ssh -L 8765:localhost:8765 pi), or predict it from a latency table the "
            "device measured (TABLE.json: `vggedge kit`, then `vggedge bench --profile KIT` on the device). "
            "Default: this machine.",
            SEARCH,
            metavar="URL|TABLE",
        ),
    ]
    time_on_token: Annotated[
        str | None,
        Opt(
            "--time-on: the bench server's token (it prints it on first start).",
            SEARCH,
            metavar="TOKEN",
            envvar="VGGEDGE_BENCH_TOKEN",
        ),
    ]
    runtime: Annotated[
        str | None,
        Opt(
            "The runtime the board will run the model with: the search writes, scores and times every candidate in "
            "its format, and the run writes that format beside model.tflite. litert (the default), tflite-runtime, "
            "onnxruntime (model.onnx; vggedge[onnx]) or openvino (model.xml; vggedge[openvino]). A latency table "
            "times TFLite pieces only; a bench server runs TFLite or ONNX.",
            SEARCH,
            metavar="NAME",
        ),
    ]
    formats: Annotated[
        str | Sequence[str],
        Opt(
            "Model formats to write beside model.tflite, each verified against the Keras source and timed here: "
            "onnx (model.onnx: float32, or int8 QDQ for the int8 recipes; pip install vggedge[onnx]), openvino "
            "(model.xml + model.bin from that graph; vggedge[openvino]), comma-separated, or all (every format "
            "whose packages are installed).",
            OUTPUT,
            "tflite",
            metavar="NAMES",
        ),
    ]
    out: Annotated[
        Path | str, Opt("Folder for the run folders (one per recipe).", OUTPUT, Path("reports"), metavar="DIR")
    ]
    progress: Annotated[
        bool,
        Opt("Progress bars on a terminal, one line per stage on a log.", OUTPUT, True, ("--progress/--quiet", " /-q")),
    ]
    cache: Annotated[
        Path | str | None,
        Opt(
            "Where the sample's images and trained model are kept. Default: $VGGEDGE_CACHE, else "
            "$XDG_CACHE_HOME/vggedge or ~/.cache/vggedge.",
            GENERAL,
            flags=("--cache-dir",),
            metavar="DIR",
            envvar="VGGEDGE_CACHE",
        ),
    ]
    offline: Annotated[
        bool,
        Opt(
            "Never try to download (Keras' ImageNet weights): fail at once with the way out instead.",
            GENERAL,
            False,
            envvar="VGGEDGE_OFFLINE",
        ),
    ]


class BenchInputs(TypedDict, total=False):
    """What ``bench`` measures on besides its models: positional in the API, an option at the CLI."""

    data: Annotated[
        Path | str | None,
        Opt(
            "Labelled images, one subfolder per class (e.g. reports/sklearn-digits-32-eval); when the run folder "
            "names its evaluation images, only those are used, else every image.",
            DATA,
            metavar="DIR",
        ),
    ]


class BenchKeywords(TypedDict, total=False):
    """The keywords of ``vggedge.bench``, the options of ``vggedge bench`` (beside ``--serve``'s and
    ``--profile``'s own)."""

    threads: Annotated[
        str | int | Sequence[int] | None,
        Opt("Interpreter threads, one count or several: 1,2,4 (default: all cores).", TIMING, metavar="N[,N…]"),
    ]
    runs: Annotated[
        int,
        Opt(
            "Timed batch-1 runs of each model × threads, interleaved (none under emulation).",
            TIMING,
            defaults.RUNS,
            metavar="N",
            min=0,
        ),
    ]
    warmup: Annotated[
        int, Opt("Untimed warm-up runs of each interpreter.", TIMING, defaults.WARMUP, metavar="N", min=0)
    ]
    cooldown_s: Annotated[
        float,
        Opt(
            "Seconds of rest before each model's burst.",
            TIMING,
            defaults.COOLDOWN_S,
            ("--cooldown",),
            "SECONDS",
            min=0.0,
            envvar="VGGEDGE_COOLDOWN",
        ),
    ]
    burst_runs: Annotated[
        int,
        Opt("Timed runs right after the cool-down: the burst p50.", TIMING, defaults.BURST_RUNS, metavar="N", min=0),
    ]
    sustain_s: Annotated[
        float,
        Opt(
            "Seconds of interleaved load before the timed runs: the sustained p50 comes after.",
            TIMING,
            defaults.SUSTAIN_S,
            ("--sustain",),
            "SECONDS",
            min=0.0,
            envvar="VGGEDGE_SUSTAIN",
        ),
    ]
    runtime: Annotated[
        str | None,
        Opt(
            "Force a runtime: ai-edge-litert, tflite-runtime or tensorflow for TFLite files, onnxruntime for ONNX, "
            "openvino for an IR.",
            TIMING,
            metavar="NAME",
            envvar="VGGEDGE_RUNTIME",
        ),
    ]
    max_drop: Annotated[
        float | None,
        Opt(
            "Accuracy budget in top-1 points for the recommendation (default: each report's).",
            BUDGET,
            metavar="POINTS",
            min=0.0,
            max=100.0,
        ),
    ]
    out: Annotated[
        Path | str | None,
        Opt(
            "Report folder (one model: default MODEL_FOLDER/bench-DEVICE; several: a folder of MODEL-Nt reports and "
            "bench.md, default bench-DEVICE in the run folder).",
            OUTPUT,
            metavar="DIR",
        ),
    ]
    progress: Annotated[
        bool,
        Opt("Progress bars on a terminal, one line per stage on a log.", OUTPUT, True, ("--progress/--quiet", " /-q")),
    ]


def thread_counts(value: str | int | Sequence[int] | None) -> list[int] | None:
    """``"1,2,4"``, ``4`` or ``[1, 2, 4]`` as ``[1, 2, 4]``; None for all cores. A bad value is one line."""
    if value is None:
        return None
    if isinstance(value, int):
        value = [value]
    try:
        counts = [int(part) for part in value.split(",") if part.strip()] if isinstance(value, str) else list(value)
    except ValueError:
        raise UserError(f"--threads takes counts separated by commas (e.g. 1,2,4), not {value!r}") from None
    if not counts or not all(isinstance(count, int) for count in counts) or min(counts) < 1:
        raise UserError(f"--threads takes counts of at least 1 (e.g. 1,2,4), not {value!r}")
    return counts


class ServeKeywords(TypedDict, total=False):
    """``vggedge bench --serve``'s options (:class:`vggedge.device.server.ServerOptions` takes its defaults)."""

    serve: Annotated[
        bool,
        Opt(
            "Run the bench server instead: time TFLite files sent over HTTP (token-checked) for `optimize --recipe "
            "auto --time-on http://HOST:PORT`.",
            SERVER,
            False,
            ("--serve",),
        ),
    ]
    host: Annotated[
        str,
        Opt(
            "--serve: the address to listen on (loopback unless you say otherwise).",
            SERVER,
            "127.0.0.1",
            metavar="ADDRESS",
        ),
    ]
    port: Annotated[int, Opt("--serve: the port (0: any free one).", SERVER, 8765, metavar="PORT", min=0, max=65535)]
    token_file: Annotated[
        Path | None,
        Opt(
            "--serve: where the access token is kept (created with mode 0600 on first start; default "
            "~/.config/vggedge/bench-token).",
            SERVER,
            metavar="FILE",
        ),
    ]
    max_mb: Annotated[
        float, Opt("--serve: the largest model file accepted, in MB.", SERVER, 600.0, metavar="MB", min=0.001)
    ]
    max_memory_mb: Annotated[
        float | None,
        Opt(
            "--serve: the memory one timing job may take beyond its own start-up, in MB (it runs in a child process "
            "with that limit). Default: three quarters of the board's MemAvailable.",
            SERVER,
            metavar="MB",
            min=16,
        ),
    ]
    max_job_seconds: Annotated[
        float,
        Opt(
            "--serve: the longest one timing job may run before it is stopped (422).",
            SERVER,
            300.0,
            metavar="SECONDS",
            min=1,
        ),
    ]
    max_connections: Annotated[
        int,
        Opt(
            "--serve: connections at once; one still sending headers gives way.",
            SERVER,
            8,
            metavar="N",
            min=1,
            max=1024,
        ),
    ]


class ProfileKeywords(TypedDict, total=False):
    """``vggedge bench --profile KIT``'s options."""

    profile: Annotated[
        Path | None,
        Opt(
            "Time a profiling kit instead (a folder `vggedge kit MODEL` made): every piece at every width, written "
            "as the latency table for `optimize --recipe auto --time-on TABLE.json` (default KIT/table-Nt.json, or "
            "--out).",
            PROFILE,
            metavar="KIT",
        ),
    ]
    profile_seconds: Annotated[
        float,
        Opt(
            "--profile: seconds of timed runs per file (after the warm-up).", PROFILE, 0.25, metavar="SECONDS", min=0.0
        ),
    ]


def default_of(keywords: type, name: str) -> Any:  # noqa: ANN401 - the option's own type
    """The declared default of one option: for the dataclasses that take the same value below the API."""
    return next(option.opt.default for option in declared(keywords) if option.name == name)


@dataclasses.dataclass(frozen=True)
class Declared:
    """One declared option: its keyword name, its Python type and how it is offered."""

    name: str
    kind: Any
    opt: Opt

    @property
    def flags(self) -> tuple[str, ...]:
        return self.opt.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def flag(self) -> str:
        """The option's main command-line name, as error messages quote it."""
        return self.flags[0].split("/")[0]

    @property
    def is_path(self) -> bool:
        return Path in typing.get_args(self.kind) or self.kind is Path


def declared(keywords: type) -> list[Declared]:
    """The options a ``TypedDict`` of this module declares, in order."""
    hints = typing.get_type_hints(keywords, include_extras=True)
    options = []
    for name, hint in hints.items():
        kind, *extras = typing.get_args(hint)
        opt = next(extra for extra in extras if isinstance(extra, Opt))
        options.append(Declared(name, kind, opt))
    return options


def filled(keywords: type, given: Mapping[str, Any], function: str) -> dict[str, Any]:
    """``given`` with every declared option's default added, paths made ``Path``; a keyword that is not declared
    is refused as Python refuses one, with the nearest declared name."""
    options = {option.name: option for option in declared(keywords)}
    for name in given:
        if name not in options:
            near = difflib.get_close_matches(name, options, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}{hint}")
    values = {name: given.get(name, option.opt.default) for name, option in options.items()}
    return {name: Path(value) if options[name].is_path and isinstance(value, str) else value
            for name, value in values.items()}  # fmt: skip


def keyword_parameters(keywords: type) -> list[inspect.Parameter]:
    """The declared options as keyword-only parameters: the runtime signature a notebook's ``?`` shows."""
    return [
        inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.opt.default,
                          annotation=option.kind)
        for option in declared(keywords)
    ]  # fmt: skip


def with_keywords(function: Any, keywords: type, drop: str = "options") -> Any:  # noqa: ANN401
    """``function`` with its ``**drop`` replaced, in its signature, by the declared keywords (for ``help()``,
    a notebook's ``?`` and ``inspect.signature``). The function still checks them with :func:`filled`."""
    signature = inspect.signature(function)
    kept = [parameter for name, parameter in signature.parameters.items() if name != drop]
    extra = [parameter for parameter in keyword_parameters(keywords) if parameter.name not in signature.parameters]
    var_keyword = [p for p in kept if p.kind is inspect.Parameter.VAR_KEYWORD]
    kept = [p for p in kept if p.kind is not inspect.Parameter.VAR_KEYWORD]
    function.__signature__ = signature.replace(parameters=[*kept, *extra, *var_keyword])
    return function
