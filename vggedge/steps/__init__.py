"""What recipe steps do to a Keras model. One module per step type, named by the step's class.

Each step class in :mod:`vggedge.recipe.schema` names its module here (``implementation``); the module
defines two functions:

- ``check(step, anatomy, data) -> Anatomy``: refuse (``UserError``) a model or data the step cannot
  handle, before any work, and say what the model's anatomy is after the step. :func:`check_recipe`
  runs it for every step of every recipe of a run before the first one starts.
- ``apply(step, model, context) -> StepResult``: the work, on a copy of the model.

The quantize step's module (:mod:`~vggedge.steps.quantize`) changes the model only for cross-layer equalization
and ``int8-qat`` (:mod:`~vggedge.steps.qat`); the conversion itself is :mod:`vggedge.export.convert`.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from vggedge.backend.keras_env import keras
from vggedge.core.convergence import rose_at_end, stuck
from vggedge.core.errors import RecipeError, UserError
from vggedge.models.anatomy import Anatomy
from vggedge.models.normalization import normalization_layers, reestimate_statistics
from vggedge.recipe.schema import Recipe, Step
from vggedge.steps.context import DataCounts, StepContext, StepResult, plain_copy
from vggedge.steps.inference_check import (
    FellShort,
    InferenceModeCollapse,
    check_inference_mode,
    require_near_input,
)
from vggedge.steps.shared import SharedSteps

# Steps whose fine-tune should end no worse than it got: the weights are cut first, then trained (tfmot's gradual
# pruning and QAT raise the loss on purpose as their schedules tighten, so they are not held to this).
CONVERGING = ("filter-prune", "head")


class FineTuneDiverged(RuntimeError):
    """A step's fine-tune ended with a loss well above its lowest: the step stops with the figures."""


class StepStopped(RuntimeError):
    """A step's own checks stopped it; ``records`` holds every step's record so far, the stopped one last (with
    ``stopped``: the reason), so the report shows the loss curve and the check that stopped it."""

    def __init__(self, reason: str, records: list[dict]) -> None:
        super().__init__(reason)
        self.records = records


# What a step's own checks raise to stop it (apply_step); apply_steps wraps them in StepStopped with the records
STOPS = (FineTuneDiverged, FellShort, InferenceModeCollapse)


def implementation(step: Step) -> ModuleType:
    """The module that checks and applies ``step`` (``vggedge.steps.<implementation>``)."""
    return importlib.import_module(f"vggedge.steps.{type(step).implementation}")


def check_step(step: Step, anatomy: Anatomy, data: DataCounts) -> Anatomy:
    """Refuse what ``step`` cannot handle (UserError, no work done); return the anatomy after it."""
    return implementation(step).check(step, anatomy, data)


def check_recipe(recipe: Recipe, anatomy: Anatomy, data: DataCounts) -> None:
    """Check every step in order on the anatomy each earlier step leaves; one line naming recipe and step."""
    for index, step in enumerate(recipe.steps):
        try:
            anatomy = check_step(step, anatomy, data)
        except UserError as error:
            raise RecipeError(f"recipe {recipe.name!r}, step {index + 1} ({step.type}): {error}") from None


def apply_step(step: Step, model: keras.Model, context: StepContext) -> StepResult:
    """Apply ``step`` to a copy of ``model``, seeded with ``context.seed`` (Python, numpy and TensorFlow).

    Under a distributed placement the step trains replicated variables; the model it returns is
    rebuilt with plain ones before anything else uses it. A step that fine-tuned is checked in inference
    mode on held-apart images (:mod:`vggedge.steps.inference_check`) before its model is handed on."""
    keras.utils.set_random_seed(context.seed)
    outcome = implementation(step).apply(step, model, context)
    if context.placement.distributed and outcome.model is not model:
        outcome.model = plain_copy(outcome.model)
    if outcome.model is not model and normalization_layers(outcome.model) and not context.synthetic:
        outcome.record["normalization_reestimated_on"] = reestimate_statistics(outcome.model, context.train)
    try:
        if step.type in CONVERGING:
            require_convergence(step.type, outcome.record)
        if outcome.record.get("loss_per_epoch") and context.held_apart is not None and len(context.held_apart):
            outcome.record["inference_check"] = check_inference_mode(
                step.type, model, outcome.model, context.held_apart.images, context.held_apart_labels
            )
            if step.type in CONVERGING:
                require_near_input(step.type, outcome.record["inference_check"])
    except STOPS as error:
        error.record = {**outcome.record, "stopped": str(error)}  # what apply_steps reports for the stopped step
        raise
    return outcome


def require_convergence(step_name: str, record: dict) -> None:
    """Stop a cut-then-train step whose fine-tune ended worse than it got, or never moved above its floor."""
    losses = record.get("loss_per_epoch")
    if losses and record.get("best_epoch") is not None:  # the plateau watch handed on that epoch's weights: judged
        losses = losses[: record["best_epoch"]]  # up to it (0: the starting weights, no epoch's)
    rose = rose_at_end(losses)
    if rose:
        raise FineTuneDiverged(
            f"{step_name}: the fine-tune's loss rose at the end ({rose}): stopped rather than hand on a model that got "
            "worse; fewer epochs or a lower learning_rate in the recipe's step may help"
        )
    flat_above = stuck(losses, record.get("loss_floor"))
    if flat_above:
        raise FineTuneDiverged(
            f"{step_name}: the fine-tune's loss stayed flat ({flat_above}): it is not learning (a learning rate too "
            "small, or nothing trainable); stopped rather than hand on an untrained model"
        )


def apply_steps(
    recipe: Recipe, model: keras.Model, context: StepContext, seed: int, shared: SharedSteps | None = None
) -> tuple[keras.Model, list[dict]]:
    """Every step of ``recipe`` in order; step ``i`` is seeded with ``seed + i``. With ``shared``, the steps an
    earlier recipe of the run began with the same way are taken over from it (:mod:`vggedge.steps.shared`)."""
    records: list[dict] = []
    start = 0
    reused = shared.reuse(recipe) if shared is not None else None
    if reused is not None:
        model, records, start = reused.model, reused.records, reused.steps
    for index in range(start, len(recipe.steps)):
        # Each step gets its own seed (shuffling, new layers' init), so a recipe's figures do not
        # depend on which recipes ran before it in the same invocation.
        try:
            outcome = apply_step(recipe.steps[index], model, dataclasses.replace(context, seed=seed + index))
        except STOPS as error:
            raise StepStopped(f"{type(error).__name__}: {error}", [*records, error.record]) from error
        model = outcome.model
        records.append(outcome.record)
        if shared is not None:
            shared.offer(recipe, index + 1, model, records)
    if shared is not None:
        shared.finished(recipe)
    return model, records


__all__ = [
    "apply_step",
    "apply_steps",
    "check_recipe",
    "check_step",
    "implementation",
    "DataCounts",
    "StepContext",
    "StepResult",
]
