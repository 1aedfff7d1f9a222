"""What recipe steps do to a Keras model. One module per step type; :func:`apply_step` dispatches.

A new step type: describe it in :mod:`vggedge.recipe` (a pydantic model), implement
``apply(step, model, context) -> StepResult`` in a module here, and register it in ``APPLIERS``.
The quantize step is not applied here: it selects the TFLite conversion mode (:mod:`vggedge.convert`).
"""

from __future__ import annotations

from collections.abc import Callable

from vggedge.keras_env import keras
from vggedge.recipe import FilterPruneStep, HeadStep, PruneStep, QuantizeStep, Step
from vggedge.steps.context import StepContext, StepResult


def apply_step(step: Step, model: keras.Model, context: StepContext) -> StepResult:
    """Apply ``step`` to a copy of ``model``, seeded with ``context.seed`` (Python, numpy and TensorFlow)."""
    from vggedge.steps import filters, head, prune, qat

    keras.utils.set_random_seed(context.seed)

    appliers: dict[type, Callable] = {
        PruneStep: prune.apply,
        HeadStep: head.apply,
        FilterPruneStep: filters.apply,
        QuantizeStep: qat.apply,
    }
    return appliers[type(step)](step, model, context)


__all__ = ["apply_step", "StepContext", "StepResult"]
