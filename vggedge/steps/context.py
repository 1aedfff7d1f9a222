"""What every step receives (data, teacher) and returns (the new model and a record for the report)."""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.data import Dataset
from vggedge.keras_env import keras


@dataclasses.dataclass
class StepContext:
    """Data available to fine-tuning steps.

    ``labels_match`` says whether the dataset's labels index the model's outputs (the sample, or a
    user's model with its own data); otherwise steps train by distillation from the model's outputs.
    ``synthetic`` marks a sizes-only run (random weights, no data): steps do the structural work
    but fine-tune nothing, since there is nothing to learn.
    ``seed`` seeds everything random in the step (new layers' initial weights, shuffling): the same
    step on the same model and data gives the same model, whoever calls it and whatever ran before.
    """

    train_images: np.ndarray
    train_labels: np.ndarray | None
    progress: bool = True
    synthetic: bool = False
    seed: int = 0

    @classmethod
    def from_dataset(cls, dataset: Dataset | None, labels_match: bool, input_size: int, progress: bool) -> StepContext:
        if dataset is None or len(dataset.train) == 0:
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, size=(4, input_size, input_size, 3), dtype=np.uint8)
            return cls(images, None, progress, synthetic=True)
        return cls(dataset.train.images, dataset.train.labels if labels_match else None, progress)


@dataclasses.dataclass
class StepResult:
    model: keras.Model
    record: dict


def clone_with(model: keras.Model, wrap, names: set[str]) -> keras.Model:  # noqa: ANN001
    """A deep copy of ``model`` (weights copied, nothing shared) with ``wrap`` applied to the named layers.

    Fine-tuning steps train the copy, so the model they started from (the baseline, the teacher)
    is left untouched.
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        return wrap(fresh) if layer.name in names else fresh

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        inner = getattr(layer, "layer", layer)
        weights = model.get_layer(inner.name).get_weights()
        if weights:
            inner.set_weights(weights)
    return copy


def float_bytes(model: keras.Model) -> int:
    """Size of the model's weights as float32: the 'size after' a step, before conversion."""
    return int(model.count_params()) * 4


def classifier_loss(model: keras.Model, use_labels: bool) -> str:
    """Cross-entropy against labels, or against soft targets (distillation), for softmax or sigmoid outputs."""
    if int(model.output_shape[-1]) == 1:
        return "binary_crossentropy"
    return "sparse_categorical_crossentropy" if use_labels else "categorical_crossentropy"


def training_targets(teacher: keras.Model, context: StepContext, batch_size: int = 32) -> tuple[np.ndarray, bool]:
    """(targets, are_labels): the true labels when they index the model's outputs, else the teacher's outputs."""
    if context.train_labels is not None:
        return context.train_labels, True
    return teacher.predict(context.train_images, batch_size=batch_size, verbose=0), False
