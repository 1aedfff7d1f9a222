"""What the user asked for, checked before TensorFlow is imported: recipes resolved, the preprocessing mode, the
automatic search's own inputs. A mistake here ends the run in a second, not after TensorFlow's start-up."""

from __future__ import annotations

import os
from pathlib import Path

from vggedge.core.errors import DataError, ModelError, RecipeError, UserError
from vggedge.recipe.schema import Recipe

PREPROCESS_MODES = ("none", "unit", "tf", "caffe", "torch")
GOALS = ("latency", "size")


def resolve_recipes(spec: object, keep_float: str | None = None) -> list[Recipe]:
    """Recipes from a name, a ``.toml`` path, a :class:`Recipe`, a comma-separated string, ``"all"`` or a list of
    those; every file validated before any work, each name at most once, ``keep_float`` applied to the int8 ones."""
    from vggedge.recipe.schema import Recipe, load_recipe, shipped_recipes

    items = spec if isinstance(spec, (list, tuple)) else [spec]
    recipes: list[Recipe] = []
    for item in items:
        if isinstance(item, Recipe):
            recipes.append(item)
        elif isinstance(item, Path):
            recipes.append(load_recipe(str(item)))
        elif isinstance(item, str):
            names = list(shipped_recipes()) if item.strip() == "all" else [n.strip() for n in item.split(",")]
            recipes += [load_recipe(name) for name in names if name]
        else:
            raise RecipeError(f"a recipe is a name, a .toml path or a Recipe. Received: {type(item).__name__}")
    if not recipes:
        raise RecipeError(f"--recipe {spec!r} names no recipe: give a name (see `vggedge recipes`), a path or 'all'")
    repeated = sorted({r.name for r in recipes if [other.name for other in recipes].count(r.name) > 1})
    if repeated:
        raise RecipeError(
            f"--recipe names {', '.join(map(repr, repeated))} more than once: each recipe writes the run folder of its "
            "name, so give each once (or rename one recipe file's `name`)"
        )
    return with_keep_float(recipes, keep_float) if keep_float is not None else recipes


def with_keep_float(recipes: list[Recipe], keep_float: str) -> list[Recipe]:
    """``--keep-float`` applied to every recipe that ends in full int8; refused when none does or the value is not
    'auto' or selectors."""
    from pydantic import ValidationError

    try:
        updated = [recipe.with_keep_float(keep_float) for recipe in recipes]
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise RecipeError(f"--keep-float {keep_float!r}: {reason}") from None
    if all(new is old for new, old in zip(updated, recipes, strict=True)):
        chosen = ", ".join(recipe.name for recipe in recipes)
        raise RecipeError(
            f"--keep-float applies to recipes that end in full int8 (int8, gap-int8, ...), not to {chosen}"
        )
    return updated


def resize_for(resize: str | None, recipes: list[Recipe]) -> str:
    """``--resize``, else the one the recipe files name (a replayed run folder's ``recipe.toml``), else stretch."""
    from vggedge.core.images import RESIZE_MODES

    if resize is None:
        named = sorted({recipe.resize for recipe in recipes if recipe.resize})
        if len(named) > 1:
            raise RecipeError(f"the recipes name different resize policies ({', '.join(named)}): give --resize")
        resize = named[0] if named else "stretch"
    if resize not in RESIZE_MODES:
        raise DataError(f"--resize must be {', '.join(RESIZE_MODES)}. Received: {resize!r}")
    return resize


def check_preprocess(preprocess: str | None) -> None:
    if preprocess is not None and preprocess not in PREPROCESS_MODES:
        raise ModelError(f"--preprocess must be none, unit, tf, caffe or torch. Received: {preprocess!r}")


def check_search_inputs(goal: str, search_data: Path | None, time_on: str | None, token: str | None) -> None:
    """``--recipe auto``'s own inputs, before any work: the goal, one machine, the held-out folder, and the timing
    target (a bench server that answers, or a file that is a latency table)."""
    if goal not in GOALS:
        raise UserError(f"--goal must be latency or size. Received: {goal!r}")
    if os.environ.get("TF_CONFIG"):
        # The search measures candidates on the chief alone; the other workers would wait for it in vain.
        raise UserError("--recipe auto runs on one machine: unset TF_CONFIG (--replicas N works on this one)")
    if search_data is not None and not Path(search_data).is_dir():
        raise DataError(f"--search-data {search_data} is not a folder of class subfolders")
    if time_on and time_on.startswith(("http://", "https://")):
        from vggedge.auto.remote import BenchClient

        BenchClient(time_on, token).check()  # a server that cannot time stops the run before any work
    elif time_on:
        from vggedge.device.latency_table import LatencyTable

        LatencyTable.load(Path(time_on))  # a file that is not a table stops the run before any work


def check_search_runtime(runtime: str | None, time_on: str | None) -> None:
    """``--runtime`` with ``--recipe auto``, before any work: a runtime vggedge knows, installed here with its format's
    writer, and one the timing target can time with (a latency table's pieces are TFLite; a bench server takes one
    file: TFLite or ONNX)."""
    if runtime is None:
        return
    import importlib.util

    from vggedge.core.errors import DeviceError
    from vggedge.core.formats import TFLITE, runtime_named
    from vggedge.export.formats import WRITERS, installed

    try:
        name, model_format = runtime_named(runtime)
    except DeviceError as error:
        raise UserError(f"--runtime: {error}") from None
    if time_on and not time_on.startswith(("http://", "https://")) and model_format is not TFLITE:
        raise UserError(
            f"--runtime {name} with a latency table: its pieces are TFLite models; time on this machine or a bench "
            "server instead, or leave --runtime out"
        )
    if time_on and model_format.companions:
        raise UserError(f"--runtime {name}: a bench server takes one file (TFLite or ONNX), not {model_format.name}")
    if model_format is not TFLITE and not installed(model_format.name):  # written here, wherever it is timed
        packages = " ".join(WRITERS[model_format.name][1])
        raise UserError(f"--runtime {name} needs {packages} here: pip install {packages}")
    module = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}.get(name, name)
    if not time_on and importlib.util.find_spec(module) is None:
        raise UserError(f"--runtime {name} is not installed here: pip install {name}")


def cluster_place(tf_config: str) -> tuple[int, int]:
    """(this worker's index, workers) from ``TF_CONFIG``, a separate chief counted as worker 0, as
    :func:`vggedge.backend.distribute.start` places it."""
    import json

    config = json.loads(tf_config)
    chiefs = len(config["cluster"].get("chief", []))
    index = int(config["task"]["index"]) + (chiefs if config["task"]["type"] == "worker" else 0)
    return index, len(config["cluster"]["worker"]) + chiefs
