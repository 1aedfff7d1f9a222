"""Swap VGG16's dense head (Flatten -> fc1 -> fc2 -> output) for GlobalAveragePooling2D -> Dense.

The dense head holds ~124M of VGG16's 138M parameters but <1% of its compute; a GAP head keeps
the conv features and needs only channels x classes weights. The conv base is kept frozen, so the
new head is trained on pooled features computed once: fast even for the full-size model.

Training-free start (``init = "lstsq"``): a ridge regression from the pooled features to the old
model's logits, so the new head begins by imitating the old one. It is then fine-tuned on labels
or by distillation from the old model's outputs (no labels needed: the ImageNet model can be
swapped with unlabelled images).
"""

from __future__ import annotations

import numpy as np

from vggedge.errors import UserError
from vggedge.keras_env import keras
from vggedge.recipe import HeadStep
from vggedge.steps.context import StepContext, StepResult, classifier_loss, clone_with, float_bytes
from vggedge.training import fit


def find_flatten(model: keras.Model) -> keras.layers.Layer:
    flattens = [layer for layer in model.layers if isinstance(layer, keras.layers.Flatten)]
    dense_after = isinstance(model.layers[-1], keras.layers.Dense)
    if not flattens or not dense_after:
        raise UserError(
            f"model {model.name!r} has no Flatten -> Dense head to replace (its last layers are "
            f"{', '.join(type(layer).__name__ for layer in model.layers[-3:])}); drop the head step from the recipe"
        )
    return flattens[-1]


def _logits(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    if p.shape[1] == 1:
        return np.log(p / (1 - p))
    logits = np.log(p)
    return logits - logits.mean(axis=1, keepdims=True)


def ridge_fit(features: np.ndarray, targets: np.ndarray, strength: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (kernel, bias) mapping features to targets, lightly regularized."""
    x = np.concatenate([features, np.ones((len(features), 1), features.dtype)], axis=1).astype(np.float64)
    gram = x.T @ x
    gram += strength * (np.trace(gram) / len(gram)) * np.eye(len(gram))
    solution = np.linalg.solve(gram, x.T @ targets.astype(np.float64))
    return solution[:-1].astype(np.float32), solution[-1].astype(np.float32)


def apply(step: HeadStep, model: keras.Model, context: StepContext) -> StepResult:
    flatten = find_flatten(model)
    old_output = model.layers[-1]
    units = int(old_output.units)
    activation = keras.activations.serialize(old_output.activation)
    features_model = keras.Model(model.input, flatten.input)
    teacher = model.predict(context.train_images, batch_size=step.batch_size, verbose=0)
    pooled = features_model.predict(context.train_images, batch_size=step.batch_size, verbose=0).mean(axis=(1, 2))

    head_input = keras.Input(pooled.shape[1:])
    new_dense = keras.layers.Dense(units, activation=activation, name="predictions")
    head = keras.Model(head_input, new_dense(head_input))
    if step.init == "lstsq":
        new_dense.set_weights(list(ridge_fit(pooled, _logits(teacher))))

    use_labels = step.train == "labels" and context.train_labels is not None
    trained = step.epochs > 0 and not context.synthetic
    if trained:
        targets = context.train_labels if use_labels else teacher
        head.compile(keras.optimizers.Adam(step.learning_rate), classifier_loss(model, use_labels))
        fit(head, pooled, targets, step.epochs, step.batch_size, f"Training the GAP head ({'labels' if use_labels else 'distillation'})", context.progress)

    x = keras.layers.GlobalAveragePooling2D(name="gap")(flatten.input)
    swapped = keras.Model(model.input, new_dense(x), name=f"{model.name}_gap")
    swapped = clone_with(swapped, lambda layer: layer, set())  # own copy: share no layer with the source
    agreement = float(np.mean(np.argmax(head.predict(pooled, verbose=0), 1) == np.argmax(teacher, 1))) if units > 1 else None
    record = {
        **step.model_dump(mode="json"),
        "train": ("labels" if use_labels else "distill") if trained else "none",
        "removed_params": int(model.count_params() - swapped.count_params()),
        "params": int(swapped.count_params()),
        "train_agreement_with_source": round(agreement, 4) if agreement is not None else None,
        "float32_bytes": float_bytes(swapped),
    }
    return StepResult(swapped, record)
