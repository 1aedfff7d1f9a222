"""What every step receives (data, teacher) and returns (the new model and a record for the report)."""

from __future__ import annotations

import dataclasses

import numpy as np

from vggedge.backend.distribute import Placement, one_device
from vggedge.backend.keras_env import keras
from vggedge.backend.training import predict_images
from vggedge.core.data import Dataset, FileSplit, Split
from vggedge.core.errors import UserError
from vggedge.models.copying import clone_with  # noqa: F401 - the steps' copy, imported from here by each step

# Fewer training images than one default batch cannot fine-tune or fit anything worth reporting (a
# 120-image folder once left 0 after evaluation and calibration, and a head fitted on 4 noise images
# lost 50 points): steps that learn refuse such data before any work.
MIN_TRAINING_IMAGES = 32


@dataclasses.dataclass(frozen=True)
class DataCounts:
    """What a step's ``check`` needs to know about the data before any is loaded into a model."""

    train: int
    calibration: int
    synthetic: bool = False  # a sizes-only run (random weights): steps do structural work only

    def require_training_images(self, what: str) -> None:
        if not self.synthetic and self.train < MIN_TRAINING_IMAGES:
            raise UserError(
                f"{what} needs at least {MIN_TRAINING_IMAGES} training images and the data leaves {self.train} "
                "after the evaluation and calibration images: add images, lower --eval-samples / "
                "--calibration-samples, or give --eval-data DIR (or DIR/train + DIR/validation)"
            )

    def require_calibration_images(self, what: str) -> None:
        if not self.synthetic and self.calibration < 1:
            raise UserError(
                f"{what} needs calibration images and the data leaves none: add images or lower --eval-samples"
            )


@dataclasses.dataclass
class StepContext:
    """Data available to fine-tuning steps.

    ``labels_match`` says whether the dataset's labels index the model's outputs (the sample, or a
    user's model with its own data); otherwise steps train by distillation from the model's outputs.
    ``synthetic`` marks a sizes-only run (random weights, no data): steps do the structural work
    but fine-tune nothing, since there is nothing to learn.
    ``seed`` seeds everything random in the step (new layers' initial weights, shuffling): the same
    step on the same model and data gives the same model, whoever calls it and whatever ran before.
    ``held_apart``: images for the inference-mode check after a fine-tune (none: no check).
    ``placement`` is where fine-tuning runs: steps build and compile the model they train under its
    strategy's scope and pass it to :func:`vggedge.backend.training.fit` (one device unless the CLI chose more).
    """

    train: Split | FileSplit  # decoded arrays, or files streamed batch by batch (vggedge.backend.training)
    train_labels: np.ndarray | None
    progress: bool = True
    synthetic: bool = False
    seed: int = 0
    placement: Placement = dataclasses.field(default_factory=one_device)
    # Images no step trains on and the evaluation never sees (the calibration split): where a fine-tuned
    # model is checked in inference mode before it is handed on (vggedge.steps.inference_check).
    held_apart: Split | None = None
    held_apart_labels: np.ndarray | None = None

    @classmethod
    def from_dataset(cls, dataset: Dataset, labels_match: bool, progress: bool) -> StepContext:
        held = dataset.calibration if len(dataset.calibration) else None
        context = cls(dataset.train, dataset.train.labels if labels_match else None, progress)
        return context.checked_on(held, labels_match)

    def checked_on(self, images: Split | None, labels_match: bool) -> StepContext:
        """This context with its fine-tunes checked on ``images``, whose labels are used only when they index the
        model's outputs (``labels_match``; else the checks compare with the teacher's answers)."""
        labels = images.labels if images is not None and labels_match else None
        return dataclasses.replace(self, held_apart=images, held_apart_labels=labels)

    def learning_rate(self, rate: float) -> float:
        """A recipe's learning rate, scaled for the number of replicas (:mod:`vggedge.backend.distribute`)."""
        return self.placement.learning_rate(rate)

    @classmethod
    def synthetic_for(cls, input_size: int, progress: bool) -> StepContext:
        """A sizes-only run (random weights): a few noise images so steps can trace shapes; nothing is learned."""
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(4, input_size, input_size, 3), dtype=np.uint8)
        return cls(Split(images, np.zeros(4, np.int64), [f"synthetic/{i}" for i in range(4)]), None, progress, True)


@dataclasses.dataclass
class StepResult:
    model: keras.Model
    record: dict


def plain_copy(model: keras.Model) -> keras.Model:
    """``model`` rebuilt outside any strategy, weights copied: what a distributed step hands on, so
    conversion, verification and later steps see ordinary variables, not one copy per replica."""
    from vggedge.backend.keras_env import tfmot

    with tfmot().quantization.keras.quantize_scope():  # quantization-aware layers are custom objects
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def frozen_layers(model: keras.Model) -> list[str]:
    """Layers with weights that the user froze (e.g. a transfer-learning base); preprocessing stays fixed."""
    from vggedge.models.anatomy import find_anatomy

    fixed = set(find_anatomy(model).preprocessing)
    return [layer.name for layer in model.layers if layer.weights and not layer.trainable and layer.name not in fixed]


def set_trainable(model: keras.Model, names: list[str], trainable: bool) -> None:
    """Set ``trainable`` on the named layers, pruning wrappers (named after their layer's name) included."""
    for layer in model.layers:
        if layer.name in names or getattr(getattr(layer, "layer", None), "name", None) in names:
            layer.trainable = trainable


def float_bytes(model: keras.Model) -> int:
    """Size of the model's weights as float32: the 'size after' a step, before conversion."""
    return int(model.count_params()) * 4


def classifier_loss(model: keras.Model, use_labels: bool) -> str | keras.losses.Loss:
    """The fine-tuning loss for the model's output kind: cross-entropy against labels or against the
    teacher's probabilities (distillation); for linear logits, cross-entropy from logits against labels
    and squared error against the teacher's logits."""
    from vggedge.models.anatomy import find_anatomy

    anatomy = find_anatomy(model)
    logits = anatomy.activation not in ("softmax", "sigmoid")
    if logits and not use_labels:
        return "mean_squared_error"
    if anatomy.units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=logits)
    if use_labels:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    return "categorical_crossentropy"


def held_apart_targets(
    teacher: keras.Model, context: StepContext, are_labels: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """(images, targets) of the held-apart split for a fine-tune's plateau watch, targets of the same kind as the
    training ones; None where there is none to watch (sizes-only runs, a cluster, no calibration split)."""
    held = context.held_apart
    if context.synthetic or context.placement.distributed or held is None or not len(held):
        return None
    if are_labels and context.held_apart_labels is None:
        return None
    images = held.images.astype(np.float32)
    if are_labels:
        return images, context.held_apart_labels
    return images, teacher.predict(images, batch_size=32, verbose=0)


def target_floor(model: keras.Model, targets: np.ndarray, are_labels: bool) -> float:
    """The lowest loss :func:`classifier_loss` can reach on ``targets``: 0 for labels and squared error, the
    teacher's own entropy for soft targets (what tells a converged distillation from a stuck one)."""
    from vggedge.core.convergence import loss_floor
    from vggedge.models.anatomy import find_anatomy

    anatomy = find_anatomy(model)
    if are_labels or anatomy.activation not in ("softmax", "sigmoid"):
        return 0.0
    return round(loss_floor(targets, "binary" if anatomy.units == 1 else "categorical"), 5)


def training_targets(
    teacher: keras.Model, context: StepContext, batch_size: int = 32, distill: bool = False
) -> tuple[np.ndarray, bool]:
    """(targets, are_labels): the true labels when they index the model's outputs (unless ``distill``), else the
    teacher's outputs."""
    if context.train_labels is not None and not distill:
        return context.train_labels, True
    return predict_images(teacher, context.train, batch_size), False
