"""The workstation's Python API: ``vggedge.optimize``, ``vggedge.search``, ``vggedge.bench``, ``vggedge.compare``.

Each returns objects (:class:`~vggedge.core.result.Result`, :class:`~vggedge.device.bench.BenchOutput`,
:class:`~vggedge.comparison.Comparison`) and checks its input before any work, raising a
:class:`~vggedge.core.errors.UserError` kind; the CLI only parses, calls these and prints.
TensorFlow is imported only by :func:`optimize` and :func:`search`, when they run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vggedge.core import defaults, errors
from vggedge.core.errors import UserError
from vggedge.core.result import Result

if TYPE_CHECKING:
    from vggedge.comparison import Comparison
    from vggedge.device.bench import BenchOutput
    from vggedge.recipe.schema import Recipe

SEARCH_ONLY = ("goal", "search_minutes", "search_images", "search_data", "time_on", "time_on_token")


def optimize(
    model: Any = "sample",  # noqa: ANN401 - a path, "sample", "vgg16" or a keras.Model
    recipe: str | Path | Recipe | Sequence[str | Path | Recipe] = "int8",
    data: Path | str | None = None,
    *,
    out: Path | str = "reports",
    eval_data: Path | str | None = None,
    weights: str | None = None,
    preprocess: str | None = None,
    labels: Path | str | None = None,
    resize: str | None = None,
    eval_samples: int | None = None,
    calibration_samples: int = defaults.CALIBRATION_SAMPLES,
    runs: int = defaults.RUNS,
    warmup: int = defaults.WARMUP,
    threads: int | None = None,
    min_agreement: float = defaults.MIN_AGREEMENT,
    max_drop: float | None = None,
    max_epochs: int | None = None,
    keep_float: str | None = None,
    remedies: bool = True,
    remedy_minutes: float = defaults.REMEDY_MINUTES,
    seed: int = defaults.SEED,
    replicas: int | None = None,
    cache: Path | str | None = None,
    offline: bool = False,
    progress: bool = True,
    on_skip: Callable[[str], None] | None = None,
    **search_options: Any,  # noqa: ANN401 - recipe="auto" only: see search()
) -> list[Result]:
    """Optimize a VGG-topology classifier with one or more recipes; one :class:`Result` per recipe.

    The float32 baseline is measured once; each recipe's steps run on a copy of it, the result is converted to
    TFLite, verified against its Keras source, measured, held to the accuracy budget and written to
    ``out/<recipe>/`` (``model.tflite``, ``recipe.toml``, ``report.json``, ``report.md``, ``labels.txt``).

    - ``model``: ``"sample"`` (offline VGG16 on scikit-learn digits), ``"vgg16"`` (Keras' ImageNet VGG16), a
      ``.keras``/``.h5`` file, or an in-memory ``keras.Model`` (Keras 3 or tf_keras).
    - ``recipe``: a shipped name (``vggedge.shipped_recipes()``), a ``.toml`` path, a :class:`Recipe`, ``"all"``
      (every shipped recipe that applies), a list of those, or ``"auto"`` (see :func:`search`).
    - ``data``: image folders, one subfolder per class (or ``train/`` + ``validation/``); the sample's digits for
      ``model="sample"``.
    - ``resize``: how pictures are fitted to the model's square input, for training, evaluation and calibration
      alike: ``"stretch"``, ``"center-crop"`` or ``"letterbox"``; recorded in the model, so ``Classifier`` and
      ``predict`` resize the same way. Default: the recipe file's own (a replayed ``recipe.toml``), else stretch.
    - ``max_drop``: the accuracy budget in top-1 points (default: the recipe's own, else 1).
    - ``max_epochs``: cut every fine-tune to at most this many epochs (a quick trial, said in every report).
    - ``keep_float``: ``"auto"`` or layer selectors kept in float in the int8 recipes.
    - ``remedies``: when a recipe misses verification or its budget, try the remedies that can help (int8 layers
      kept in float, one epoch of QAT, then a gentler filter cut) within ``remedy_minutes``, keep the first that
      ends ok, and record every try in the report's ``remedies`` section.

    A result that is not ok (over budget, failed verification or export) is still returned, with its report.
    Raises a :class:`~vggedge.core.errors.UserError` kind for bad input, before anything is written.

    >>> results = vggedge.optimize("model.keras", recipe="int8", data="photos/")   # doctest: +SKIP
    >>> results[0].ok, results[0].model_path                                        # doctest: +SKIP
    """
    from vggedge.run.requests import resize_for  # pydantic, on the workstation only: imported when used

    recipes, search = _checked_request(recipe, keep_float, preprocess, max_drop, threads, search_options)
    if not remedy_minutes >= 0:
        raise UserError(f"remedy_minutes (--remedy-minutes) must be 0 or more, not {remedy_minutes}")
    resize = resize_for(resize, recipes)
    with _model_source(model) as source:
        fields = dict(
            model=source,
            data=data,
            eval_data=eval_data,
            out=out,
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
            remedies=remedies,
            remedy_minutes=remedy_minutes,
            seed=seed,
            cache=cache,
            offline=offline,
            progress=progress,
            auto=search,
            skip_inapplicable=recipe == "all",
        )
        if keras_chosen_elsewhere():
            folders = _run_in_child(recipes, replicas, fields)
        else:
            from vggedge.run.optimize import optimize as run

            folders = run(recipes, _options(replicas, **fields), on_skip=on_skip)
    return [Result.load(path) for path in folders]


def keras_chosen_elsewhere() -> bool:
    """TensorFlow already imported with Keras 3 as ``tf.keras`` (``import keras`` or ``import tensorflow`` came
    first, as in most notebooks): tfmot needs Keras 2, which can only be chosen before TensorFlow starts."""
    return "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1"


def _run_in_child(recipes: list, replicas: int | None, fields: dict) -> list[Path]:
    """The run in a fresh Python process that chooses Keras 2 before TensorFlow starts. Its progress lines are
    relayed to this process's stderr (a notebook shows them); a :class:`UserError` comes back as the same kind."""
    import pickle
    import subprocess

    with tempfile.TemporaryDirectory(prefix="vggedge-run-") as folder:
        request, answer = Path(folder) / "request.pickle", Path(folder) / "answer.pickle"
        request.write_bytes(pickle.dumps((recipes, replicas, fields)))
        code = f"from vggedge.api import _child_main; _child_main({str(request)!r}, {str(answer)!r})"
        environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        with subprocess.Popen(
            [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, errors="replace", env=environment
        ) as child:
            for line in child.stderr:
                sys.stderr.write(line)
        if not answer.exists():
            raise RuntimeError(f"the optimize run's process ended with exit code {child.returncode} and no answer")
        kind, value = pickle.loads(answer.read_bytes())
    if kind == "folders":
        return [Path(path) for path in value]
    error_class = getattr(errors, value[0], UserError) if kind == "user_error" else RuntimeError
    raise error_class(value[1])


def _child_main(request: str, answer: str) -> None:
    """The child's side of :func:`_run_in_child`: run, then write the folders or the error."""
    import pickle

    recipes, replicas, fields = pickle.loads(Path(request).read_bytes())
    from vggedge.core.quiet import silence_native_stderr

    silence_native_stderr()  # TensorFlow's and the interpreter's C++ lines, as the CLI does; progress stays
    try:
        from vggedge.run.optimize import optimize as run

        outcome = ("folders", [str(path) for path in run(recipes, _options(replicas, **fields))])
    except UserError as error:
        outcome = ("user_error", (type(error).__name__, str(error)))
    except Exception as error:  # noqa: BLE001 - the parent reports it
        outcome = ("error", (type(error).__name__, f"{type(error).__name__}: {error}"))
    Path(answer).write_bytes(pickle.dumps(outcome))


def search(
    model: Any = "sample",  # noqa: ANN401 - as optimize()
    data: Path | str | None = None,
    *,
    goal: str = "latency",
    max_drop: float | None = None,
    search_minutes: float | None = None,
    search_images: int | None = None,
    search_data: Path | str | None = None,
    time_on: str | None = None,
    time_on_token: str | None = None,
    **options: Any,  # noqa: ANN401 - every other keyword of optimize()
) -> Result:
    """``--recipe auto``: the fastest (``goal="latency"``) or smallest (``"size"``) model within ``max_drop``.

    Searches per-block conv widths (and the GAP head) against latency measured here, on the device
    (``time_on="http://pi:8765"``, a running ``vggedge bench --serve``) or predicted from a latency table the
    device measured (``time_on="table-4t.json"``), ranks on a split carved from the training images (or
    ``search_data``, images the model never trained on), validates the path with the found recipe's own
    fine-tunes, then runs the found recipe like any other. Its ``recipe.toml`` replays the shape; the report's
    ``search`` section has the trace. ``search_minutes`` bounds the search (default 20; a third for validations).
    """
    return optimize(
        model,
        "auto",
        data,
        goal=goal,
        max_drop=max_drop,
        search_minutes=search_minutes,
        search_images=search_images,
        search_data=search_data,
        time_on=time_on,
        time_on_token=time_on_token,
        **options,
    )[0]


def bench(
    models: Sequence[Path | str] | Path | str,
    data: Path | str | None = None,
    *,
    threads: Sequence[int] | int | None = None,
    runs: int = defaults.RUNS,
    warmup: int = defaults.WARMUP,
    out: Path | str | None = None,
    runtime: str | None = None,
    max_drop: float | None = None,
    progress: bool = True,
    **timing: Any,  # noqa: ANN401 - cooldown_s, sustain_s, burst_runs: vggedge.device.bench.BenchOptions
) -> BenchOutput:
    """Benchmark TFLite models on this device (no TensorFlow): accuracy and agreement on ``data``, burst and
    sustained latency at each thread count, the board's state; a report per model × threads, and for several
    the fastest within the budget (``.summary``). ``models``: ``.tflite`` files or ``optimize`` run folders."""
    from vggedge.device.bench import BenchOptions
    from vggedge.device.bench import bench as run

    paths = [models] if isinstance(models, (str, Path)) else list(models)
    counts = [threads] if isinstance(threads, int) else (list(threads) if threads else None)
    return run(
        BenchOptions(
            models=[Path(p) for p in paths],
            data=Path(data) if data is not None else None,
            threads=counts,
            runs=runs,
            warmup=warmup,
            out=Path(out) if out is not None else None,
            runtime=runtime,
            progress=progress,
            max_drop=max_drop,
            **timing,
        )
    )


def compare(paths: Sequence[Path | str] | Path | str, max_drop: float | None = None) -> Comparison:
    """Every ``report.json`` under ``paths`` in one table, with the recommendation per device and goal."""
    from vggedge.comparison import compare as run

    return run(paths, max_drop)


def _checked_request(
    recipe: object, keep_float: str | None, preprocess: str | None, max_drop: float | None, threads: int | None,
    search_options: dict,
) -> tuple[list, object | None]:  # fmt: skip
    """(recipes, the search's options or None) from what :func:`optimize` was asked, every mistake refused before
    TensorFlow starts: search-only options without ``recipe="auto"``, ``keep_float`` with it, unknown recipes."""
    from vggedge.run.requests import check_preprocess, check_search_inputs, resolve_recipes

    auto = isinstance(recipe, str) and recipe.strip() == "auto"
    unknown = sorted(set(search_options) - set(SEARCH_ONLY))
    if unknown:
        raise TypeError(f"optimize() got unexpected keyword argument(s): {', '.join(unknown)}")
    given = [f"--{name.replace('_', '-')}" for name, value in search_options.items() if value is not None]
    if given and not auto:
        kind = "options" if len(given) > 1 else "an option"
        raise UserError(f"{', '.join(given)}: {kind} of the automatic search; use it with --recipe auto")
    if auto and keep_float is not None:
        raise UserError("--keep-float applies to the fixed int8 recipes, not to --recipe auto")
    check_preprocess(preprocess)
    if not auto:
        return resolve_recipes(recipe, keep_float), None
    settings = {name: search_options.get(name) for name in SEARCH_ONLY}
    goal = settings["goal"] or "latency"
    check_search_inputs(goal, settings["search_data"], settings["time_on"], settings["time_on_token"])
    return [], _search_options(goal, max_drop, threads, settings)


def _search_options(goal: str, max_drop: float | None, threads: int | None, settings: dict) -> object:
    from vggedge.auto.rules import SearchOptions

    given = {"minutes": settings["search_minutes"]} if settings["search_minutes"] is not None else {}
    return SearchOptions(
        goal=goal,
        max_drop_pts=defaults.MAX_DROP_PTS if max_drop is None else max_drop,
        search_images=settings["search_images"],
        threads=threads,
        time_on=settings["time_on"],
        time_on_token=settings["time_on_token"],
        search_data=Path(settings["search_data"]) if settings["search_data"] is not None else None,
        **given,  # else SearchOptions' own default: one source for it
    )


def _options(replicas: int | None, **fields: Any) -> object:  # noqa: ANN401
    """The run's :class:`~vggedge.run.options.OptimizeOptions` (paths made ``Path``); the placement chosen first,
    before anything else touches TensorFlow (devices and a cluster's collectives are fixed at start-up)."""
    from vggedge.backend.distribute import start
    from vggedge.core.cache import default_cache_dir
    from vggedge.run.options import OptimizeOptions

    placement = start(replicas, os.environ.get("TF_CONFIG"))
    for name in ("data", "eval_data", "out", "labels", "cache"):
        if fields[name] is not None:
            fields[name] = Path(fields[name])
    fields["cache"] = fields["cache"] or default_cache_dir()
    return OptimizeOptions(**fields, placement=placement)


@contextlib.contextmanager
def _model_source(model: Any) -> Iterator[str]:  # noqa: ANN401
    """The model as the loader takes it: a name or path as given; an in-memory ``keras.Model`` saved to a
    temporary ``.keras`` file (named after the model) for the run, then removed."""
    if isinstance(model, (str, Path)):
        yield str(model)
        return
    if not (hasattr(model, "save") and hasattr(model, "layers")):
        raise UserError(f"model must be a path, 'sample', 'vgg16' or a keras.Model. Received: {type(model).__name__}")
    with tempfile.TemporaryDirectory(prefix="vggedge-model-") as folder:
        path = Path(folder) / f"{getattr(model, 'name', None) or 'model'}.keras"
        model.save(path)
        yield str(path)
