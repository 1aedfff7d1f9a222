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
from vggedge.core.keywords import (
    SEARCH,
    BenchKeywords,
    OptimizeKeywords,
    declared,
    filled,
    thread_counts,
    with_keywords,
)
from vggedge.core.result import Result

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11; annotations only (never evaluated)

    from vggedge.comparison import Comparison
    from vggedge.device.bench import BenchOutput
    from vggedge.recipe.schema import Recipe

SEARCH_ONLY = tuple(option.name for option in declared(OptimizeKeywords) if option.opt.panel == SEARCH)


def optimize(
    model: Any = "sample",  # noqa: ANN401 - a path, "sample", "vgg16" or a keras.Model
    recipe: str | Path | Recipe | Sequence[str | Path | Recipe] = "int8",
    data: Path | str | None = None,
    *,
    on_skip: Callable[[str], None] | None = None,
    **options: Unpack[OptimizeKeywords],
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
    - ``on_skip``: called with one line per recipe ``"all"`` leaves out as inapplicable.
    - ``options``: the keywords of :class:`~vggedge.core.keywords.OptimizeKeywords` (the command line's options
      of the same names: ``max_drop`` is ``--max-drop``), each with its default and meaning in the table below.

    A result that is not ok (over budget, failed verification or export) is still returned, with its report.
    Raises a :class:`~vggedge.core.errors.UserError` kind for bad input, before anything is written.

    >>> results = vggedge.optimize("model.keras", recipe="int8", data="photos/")   # doctest: +SKIP
    >>> results[0].ok, results[0].model_path                                        # doctest: +SKIP
    """
    from vggedge.export.formats import resolve_formats, with_format_of
    from vggedge.run.requests import resize_for  # pydantic, on the workstation only: imported when used

    asked = filled(OptimizeKeywords, options, "optimize")
    searched = {name: asked.pop(name) for name in SEARCH_ONLY}
    keep_float, replicas = asked.pop("keep_float"), asked.pop("replicas")
    recipes, search = _checked_request(recipe, keep_float, asked, searched)
    if not asked["remedy_minutes"] >= 0:
        raise UserError(f"remedy_minutes (--remedy-minutes) must be 0 or more, not {asked['remedy_minutes']}")
    asked["resize"] = resize_for(asked["resize"], recipes)
    asked["formats"] = resolve_formats(asked["formats"])
    if search is not None and search.runtime is not None:  # the format the search timed is written and verified too
        asked["formats"] = with_format_of(search.runtime, asked["formats"])
    with _model_source(model) as source:
        fields = {**asked, "model": source, "data": Path(data) if isinstance(data, str) else data, "auto": search}
        fields["skip_inapplicable"] = recipe == "all"
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
    **options: Unpack[OptimizeKeywords],
) -> Result:
    """``--recipe auto``: the fastest (``goal="latency"``) or smallest (``"size"``) model within ``max_drop``.

    Searches per-block conv widths (and the GAP head) against latency measured here, on the device
    (``time_on="http://pi:8765"``, a running ``vggedge bench --serve``) or predicted from a latency table the
    device measured (``time_on="table-4t.json"``), ranks on a split carved from the training images (or
    ``search_data``, images the model never trained on), validates the path with the found recipe's own
    fine-tunes, then runs the found recipe like any other. Its ``recipe.toml`` replays the shape; the report's
    ``search`` section has the trace. ``search_minutes`` bounds the search (default 20; a third for validations).
    Takes every keyword of :func:`optimize`.
    """
    return optimize(model, "auto", data, **options)[0]


def bench(
    models: Sequence[Path | str] | Path | str,
    data: Path | str | None = None,
    **options: Unpack[BenchKeywords],
) -> BenchOutput:
    """Benchmark TFLite models on this device (no TensorFlow): accuracy and agreement on ``data``, burst and
    sustained latency at each thread count, the board's state; a report per model × threads, and for several
    the fastest within the budget (``.summary``). ``models``: ``.tflite`` files or ``optimize`` run folders;
    ``options``: the keywords of :class:`~vggedge.core.keywords.BenchKeywords` (``threads`` one count, several,
    or ``"1,2,4"``)."""
    from vggedge.device.bench import BenchOptions
    from vggedge.device.bench import bench as run

    asked = filled(BenchKeywords, options, "bench")
    asked["threads"] = thread_counts(asked["threads"])
    paths = [models] if isinstance(models, (str, Path)) else list(models)
    data = Path(data) if data is not None else None
    return run(BenchOptions(models=[Path(p) for p in paths], data=data, **asked))


def compare(paths: Sequence[Path | str] | Path | str, max_drop: float | None = None) -> Comparison:
    """Every ``report.json`` under ``paths`` in one table, with the recommendation per device and goal."""
    from vggedge.comparison import compare as run

    return run(paths, max_drop)


def _checked_request(
    recipe: object, keep_float: str | None, asked: dict, search_options: dict
) -> tuple[list, object | None]:
    """(recipes, the search's options or None) from what :func:`optimize` was asked, every mistake refused before
    TensorFlow starts: search-only options without ``recipe="auto"``, ``keep_float`` with it, unknown recipes."""
    from vggedge.run.requests import check_preprocess, check_search_inputs, check_search_runtime, resolve_recipes

    auto = isinstance(recipe, str) and recipe.strip() == "auto"
    given = [f"--{name.replace('_', '-')}" for name, value in search_options.items() if value is not None]
    if given and not auto:
        kind = "options" if len(given) > 1 else "an option"
        raise UserError(f"{', '.join(given)}: {kind} of the automatic search; use it with --recipe auto")
    if auto and keep_float is not None:
        raise UserError("--keep-float applies to the fixed int8 recipes, not to --recipe auto")
    check_preprocess(asked["preprocess"])
    if not auto:
        return resolve_recipes(recipe, keep_float), None
    settings = {name: search_options.get(name) for name in SEARCH_ONLY}
    goal = settings["goal"] or "latency"
    check_search_runtime(settings["runtime"], settings["time_on"])  # before a server or a table is asked anything
    check_search_inputs(goal, settings["search_data"], settings["time_on"], settings["time_on_token"])
    return [], _search_options(goal, asked["max_drop"], asked["threads"], settings)


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
        runtime=settings["runtime"],
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


with_keywords(optimize, OptimizeKeywords)
with_keywords(search, OptimizeKeywords)
with_keywords(bench, BenchKeywords)
