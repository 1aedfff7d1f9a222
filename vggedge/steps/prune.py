"""Magnitude pruning with tensorflow-model-optimization, with the sparsity it reached checked.

tfmot only updates its masks every ``frequency`` steps (default 100): a short fine-tune can end
with no sparsity at all. The schedule here is sized to the fine-tune actually run (masks updated
about ten times over the first half of the fine-tune, the last update exactly at the end step, and
the second half left to recover, by default at a cosine-decaying rate), and the sparsity of every pruned layer
is measured after ``strip_pruning``; falling short of the target is an error, not a silent pass.
"""

from __future__ import annotations

import re

import numpy as np

from vggedge.keras_env import keras, tfmot
from vggedge.recipe import PruneStep
from vggedge.steps.context import (
    StepContext,
    StepResult,
    classifier_loss,
    clone_with,
    float_bytes,
    training_targets,
)
from vggedge.training import cosine_to_a_tenth, fit, total_steps

def _is_dense(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Dense)


def _is_conv(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D) and layer.name != "preprocess"


# "dense" is the hidden dense layers (fc1, fc2: 98% of VGG16's dense weights); the output layer
# stays whole, since pruning it removes class evidence directly and saves little.
GROUPS = {
    "dense": lambda layer, output: _is_dense(layer) and layer is not output,
    "conv": lambda layer, output: _is_conv(layer),
    "all": lambda layer, output: _is_dense(layer) or _is_conv(layer),
}


class PruningError(RuntimeError):
    """Pruning ran but did not reach the target sparsity."""


def select_layers(model: keras.Model, selector: str) -> list[str]:
    """Names of the layers a ``layers`` value selects: a group name or a regular expression."""
    output = model.layers[-1]
    if selector in GROUPS:
        chosen = [layer.name for layer in model.layers if GROUPS[selector](layer, output)]
    else:
        pattern = re.compile(selector)
        chosen = [
            layer.name for layer in model.layers
            if pattern.fullmatch(layer.name) and GROUPS["all"](layer, output)
        ]
    if not chosen:
        names = ", ".join(layer.name for layer in model.layers if GROUPS["all"](layer, output))
        raise ValueError(f"prune layers={selector!r} selects no Conv2D/Dense layer; layers: {names}")
    return chosen


def layer_sparsity(model: keras.Model, names: list[str]) -> dict[str, float]:
    """Fraction of exact zeros in each named layer's kernel."""
    return {name: round(float(np.mean(model.get_layer(name).kernel.numpy() == 0)), 4) for name in names}


def apply(step: PruneStep, model: keras.Model, context: StepContext) -> StepResult:
    sparsity_api = tfmot().sparsity.keras
    names = set(select_layers(model, step.layers))
    targets, are_labels = training_targets(model, context, step.batch_size)
    batch_size = min(step.batch_size, len(context.train_images))
    epochs = 1 if context.synthetic else step.epochs
    steps = total_steps(len(context.train_images), batch_size, epochs)
    if context.synthetic:
        # Nothing to learn: prune once, at the first step, with a zero learning rate.
        schedule = sparsity_api.ConstantSparsity(step.sparsity, begin_step=0, frequency=1)
        learning_rate = 0.0
    else:
        # Reach the target halfway through, then fine-tune the pruned network for the other half.
        ramp = max(1, steps // 2)
        frequency = max(1, ramp // 10)
        end_step = max(frequency, ramp // frequency * frequency)
        schedule = sparsity_api.PolynomialDecay(0.0, step.sparsity, begin_step=0, end_step=end_step, frequency=frequency)
        # By default the rate decays so the recovering half settles (conv pruning did better at a constant rate).
        learning_rate = (
            cosine_to_a_tenth(step.learning_rate, steps) if step.learning_rate_schedule == "cosine" else step.learning_rate
        )

    wrapped = clone_with(model, lambda layer: sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule), names)
    wrapped.compile(keras.optimizers.Adam(learning_rate), classifier_loss(model, are_labels))
    fit(
        wrapped, context.train_images, targets, epochs, batch_size,
        f"Pruning {step.layers} to {step.sparsity:.0%}", context.progress,
        callbacks=[sparsity_api.UpdatePruningStep()],
    )
    pruned = sparsity_api.strip_pruning(wrapped)
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
        "sparsity_reached": round(zeros / pruned_weights, 4),
        "layer_sparsity": per_layer,
        "params": int(pruned.count_params()),
        "nonzero_params": int(pruned.count_params()) - zeros,
        "float32_bytes": float_bytes(pruned),
    }
    return StepResult(pruned, record)
