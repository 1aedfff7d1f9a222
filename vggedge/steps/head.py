"""Swap VGG16's dense head for GlobalAveragePooling2D -> one Dense, whatever head the model has.

The dense head (Flatten -> fc1 -> fc2 -> output) holds ~124M of VGG16's 138M parameters but <1% of
its compute; a GAP head keeps the conv features and needs only channels x classes weights. Heads
that already pool globally but keep hidden dense layers (GAP -> Dense(4096) -> Dense(4096) -> output)
lose those layers the same way. The output keeps its units and activation (softmax, sigmoid or
linear logits). The conv base is kept frozen, so the new head is trained on pooled features
computed once: fast even for the full-size model.

Training-free start (``init = "lstsq"``): a ridge regression from the pooled features to the old
model's logits, so the new head begins by imitating the old one. It is then fine-tuned on labels
or by distillation from the old model's outputs (no labels needed: the ImageNet model can be
swapped with unlabelled images).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.backend.training import fit, predict_images
from vggedge.core.errors import UserError
from vggedge.core.metrics import top1_classes
from vggedge.models.anatomy import Anatomy, find_anatomy
from vggedge.recipe.schema import HeadStep
from vggedge.steps.context import (
    DataCounts,
    StepContext,
    StepResult,
    classifier_loss,
    clone_with,
    float_bytes,
    target_floor,
)

NEW_OUTPUT = "predictions"


def require_a_head_to_swap(anatomy: Anatomy) -> None:
    if anatomy.head_kind != "flatten" and not anatomy.hidden:
        raise UserError(
            f"the head of {anatomy.name!r} is already global pooling -> one Dense ({anatomy.output}): "
            "nothing to swap; drop the head step from the recipe"
        )


def check(step: HeadStep, anatomy: Anatomy, data: DataCounts) -> Anatomy:
    """There is a head to replace and images to fit the new one on; the anatomy after is GAP -> one Dense."""
    require_a_head_to_swap(anatomy)
    data.require_training_images("the head swap (its least-squares start and fine-tune)")
    return dataclasses.replace(anatomy, head_kind="gap", head_pool="gap", hidden=(), output=NEW_OUTPUT)


def _logits(outputs: np.ndarray, activation: str) -> np.ndarray:
    """The pre-activation values the new Dense must produce to give ``outputs`` (what lstsq fits to)."""
    if activation not in ("softmax", "sigmoid"):
        return outputs  # linear logits (or another activation, fitted as is)
    p = np.clip(outputs, 1e-7, 1 - 1e-7)
    if activation == "sigmoid":
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
    anatomy = find_anatomy(model)
    require_a_head_to_swap(anatomy)
    features = model.get_layer(anatomy.head_pool).input  # the last conv block's output (after its pooling)
    # Pooled inside the model: one C-vector per image in memory, not the H×W×C feature maps.
    pooled_model = keras.Model(model.input, keras.layers.GlobalAveragePooling2D()(features))
    teacher = predict_images(model, context.train, step.batch_size)
    pooled = predict_images(pooled_model, context.train, step.batch_size)

    use_labels = step.train == "labels" and context.train_labels is not None
    trained = step.epochs > 0 and not context.synthetic
    with context.placement.strategy.scope():
        head_input = keras.Input(pooled.shape[1:])
        new_dense = keras.layers.Dense(anatomy.units, activation=anatomy.activation, name=NEW_OUTPUT)
        head = keras.Model(head_input, new_dense(head_input))
        if step.init == "lstsq":
            new_dense.set_weights(list(ridge_fit(pooled, _logits(teacher, anatomy.activation))))
        if trained:
            head.compile(
                keras.optimizers.Adam(context.learning_rate(step.learning_rate)), classifier_loss(model, use_labels)
            )
    losses: list[float] = []
    start_loss = None
    if trained:
        targets = context.train_labels if use_labels else teacher
        # The loss before the first step: with the least-squares start a distillation may begin at its floor
        loss = keras.losses.get(classifier_loss(model, use_labels))
        start_loss = round(float(np.mean(loss(targets, head(pooled, training=False)))), 5)
        losses = fit(
            head,
            pooled,
            targets,
            step.epochs,
            step.batch_size,
            f"Training the GAP head ({'labels' if use_labels else 'distillation'})",
            context.progress,
            placement=context.placement,
        )

    x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    swapped = keras.Model(model.input, new_dense(x), name=f"{model.name}_gap")
    swapped = clone_with(swapped, lambda layer: layer, set())  # own copy: share no layer with the source
    # On a plain copy: a distributed prediction would split the features across a cluster's workers.
    plain_head = clone_with(head, lambda layer: layer, set())
    agreement = float(np.mean(top1_classes(plain_head.predict(pooled, verbose=0)) == top1_classes(teacher)))
    record = {
        **step.model_dump(mode="json"),
        "replaced": {"kind": anatomy.head_kind, "hidden": list(anatomy.hidden), "output": anatomy.output},
        "train": ("labels" if use_labels else "distill") if trained else "none",
        "loss_per_epoch": losses,
        "loss_floor": target_floor(model, teacher, use_labels) if trained else None,
        "start_loss": start_loss,
        "precision": "float32 (one Dense on pooled features: nothing for bfloat16 to gain)" if trained else None,
        "removed_params": int(model.count_params() - swapped.count_params()),
        "params": int(swapped.count_params()),
        "train_agreement_with_source": round(agreement, 4),
        "float32_bytes": float_bytes(swapped),
    }
    return StepResult(swapped, record)
