"""``optimize``: every recipe against one baseline measurement; on a cluster's other workers, the steps only."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from vggedge.core.errors import OutputError
from vggedge.core.formatting import printable
from vggedge.core.progress import log_line
from vggedge.core.run_folder import clean_stale, output_lock
from vggedge.recipe.schema import Recipe
from vggedge.run.auto_run import (
    run_auto,
)
from vggedge.run.baseline import prepare, step_context
from vggedge.run.inputs import check_writable
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.run.outputs import (
    export_eval_images,
)
from vggedge.run.recipe_run import run_recipe
from vggedge.steps import apply_steps
from vggedge.steps.shared import SharedSteps


def train_as_worker(prepared: Prepared, options: OptimizeOptions) -> None:
    """A cluster's other workers: every recipe's steps, in the chief's order, in lock-step with it.

    A step that fails on the chief fails here too (same model, same data), so both move on to the
    next recipe together; what the steps produce is the chief's to convert and write."""
    context = step_context(prepared, options)
    shared = SharedSteps(prepared.recipes)  # the chief's table: both take over the same steps
    for recipe in prepared.recipes:
        with contextlib.suppress(Exception):  # the chief reports a step's failure; a worker follows along
            apply_steps(recipe, prepared.baseline.model, context, options.seed, shared)


def optimize(recipes: list[Recipe], options: OptimizeOptions, on_skip=None) -> list[Path]:  # noqa: ANN001
    """Run ``recipes`` against one baseline measurement; ``on_skip(line)`` hears of recipes left out. The chief
    holds a lock on ``--out`` for the whole run and first clears what a killed run left there."""
    if not options.placement.is_chief:
        return optimize_locked(recipes, options, on_skip)
    check_writable(options.out)
    for recipe in recipes:  # a file where a run folder goes: said now, not after the work
        if (options.out / recipe.name).exists() and not (options.out / recipe.name).is_dir():
            raise OutputError(
                f"{printable(options.out / recipe.name)} is not a folder: the run of recipe {recipe.name!r} is written "
                "there; move the file or pass another --out"
            )
    with output_lock(options.out):
        cleaned = clean_stale(options.out)
        if cleaned and options.progress:
            log_line(f"{printable(options.out)}: a killed run's leftovers cleared ({'; '.join(cleaned)})")
        return optimize_locked(recipes, options, on_skip)


def optimize_locked(recipes: list[Recipe], options: OptimizeOptions, on_skip=None) -> list[Path]:  # noqa: ANN001
    """:func:`optimize`'s work."""
    capped = [recipe.with_max_epochs(options.max_epochs) for recipe in recipes]
    cut_short = {recipe.name for recipe, cut in zip(recipes, capped, strict=True) if cut != recipe}
    prepared = dataclasses.replace(prepare(options, capped), cut_short=cut_short)
    if not options.placement.is_chief:
        train_as_worker(prepared, options)
        return []
    for line in prepared.skipped:
        if on_skip:
            on_skip(line)
    if options.auto is not None:
        reports = [run_auto(prepared, options)]
    else:
        shared = SharedSteps(prepared.recipes)
        reports = [run_recipe(recipe, prepared, options, shared=shared) for recipe in prepared.recipes]
    if options.model == "sample" and options.data is None:
        export_eval_images(prepared, options.out)
    return reports
