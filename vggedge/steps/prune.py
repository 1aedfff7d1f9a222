"""Magnitude pruning with tensorflow-model-optimization, with the sparsity it reached checked.

tfmot only updates its masks every ``frequency`` steps (default 100): a short fine-tune can end
with no sparsity at all. The schedule here is sized to the fine-tune actually run (masks updated
about ten times over the first half of the fine-tune, the last update exactly at the end step, and
the second half left to recover, by default at a cosine-decaying rate), and the sparsity of every pruned layer
is measured after ``strip_pruning``; falling short of the target is an error, not a silent pass.
"""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras, tfmot
from vggedge.backend.training import cosine_to_a_tenth, fit, total_steps
from vggedge.models.anatomy import Anatomy, find_anatomy
from vggedge.recipe.schema import PruneStep
from vggedge.steps.context import (
    DataCounts,
    StepContext,
    StepResult,
    classifier_loss,
    clone_with,
    float_bytes,
    frozen_layers,
    set_trainable,
    training_targets,
)


class PruningError(RuntimeError):
    """Pruning ran but did not reach the target sparsity."""


def check(step: PruneStep, anatomy: Anatomy, data: DataCounts) -> Anatomy:
    """The selector picks layers of this model, and there are images to fine-tune on."""
    anatomy.select(step.layers)
    data.require_training_images(f"pruning with a {step.epochs}-epoch fine-tune")
    return anatomy


def layer_sparsity(model: keras.Model, names: list[str]) -> dict[str, float]:
    """Fraction of exact zeros in each named layer's kernel."""
    return {name: round(float(np.mean(model.get_layer(name).kernel.numpy() == 0)), 4) for name in names}


def apply(step: PruneStep, model: keras.Model, context: StepContext) -> StepResult:
    sparsity_api = tfmot().sparsity.keras
    names = set(find_anatomy(model).select(step.layers))
    targets, are_labels = training_targets(model, context, step.batch_size)
    batch_size = min(step.batch_size, len(context.train))
    epochs = 1 if context.synthetic else step.epochs
    steps = total_steps(len(context.train), batch_size, epochs, context.placement)
    if context.synthetic:
        # Nothing to learn: prune once, at the first step, with a zero learning rate.
        schedule = sparsity_api.ConstantSparsity(step.sparsity, begin_step=0, frequency=1)
        learning_rate = 0.0
    else:
        # Reach the target halfway through, then fine-tune the pruned network for the other half.
        ramp = max(1, steps // 2)
        frequency = max(1, ramp // 10)
        end_step = max(frequency, ramp // frequency * frequency)
        schedule = sparsity_api.PolynomialDecay(
            0.0, step.sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
        # By default the rate decays so the recovering half settles (conv pruning did better at a constant rate).
        peak = context.learning_rate(step.learning_rate)
        learning_rate = cosine_to_a_tenth(peak, steps) if step.learning_rate_schedule == "cosine" else peak

    # A frozen base (transfer learning) cannot recover from pruning: it trains during this fine-tune only.
    frozen = frozen_layers(model) if not context.synthetic else []
    with context.placement.strategy.scope():
        wrapped = clone_with(
            model, lambda layer: sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule), names
        )
        set_trainable(wrapped, frozen, True)
        wrapped.compile(keras.optimizers.Adam(learning_rate), classifier_loss(model, are_labels))
    losses = fit(
        wrapped,
        context.train,
        targets,
        epochs,
        batch_size,
        f"Pruning {step.layers} to {step.sparsity:.0%}",
        context.progress,
        callbacks=[sparsity_api.UpdatePruningStep()],
        placement=context.placement,
    )
    pruned = sparsity_api.strip_pruning(wrapped)
    set_trainable(pruned, frozen, False)
    per_layer = layer_sparsity(pruned, sorted(names))
    short = {name: s for name, s in per_layer.items() if s < step.sparsity - 0.01}
    if short:
        raise PruningError(f"pruning stopped short of {step.sparsity:.0%} sparsity: {short}")
    pruned_weights = sum(pruned.get_layer(n).kernel.numpy().size for n in names)
    zeros = sum(int(np.sum(pruned.get_layer(n).kernel.numpy() == 0)) for n in names)
    record = {
        **step.model_dump(mode="json"),
        "fine_tuned": not context.synthetic,
        "targets": "labels" if are_labels else "distillation",
        "loss_per_epoch": losses if not context.synthetic else [],
        "sparsity_reached": round(zeros / pruned_weights, 4),
        "layer_sparsity": per_layer,
        "params": int(pruned.count_params()),
        "nonzero_params": int(pruned.count_params()) - zeros,
        "float32_bytes": float_bytes(pruned),
        "unfrozen_for_fine_tune": frozen,
    }
    return StepResult(pruned, record)
