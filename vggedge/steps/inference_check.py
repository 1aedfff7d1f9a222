"""After a step fine-tunes: is the model it hands on right in inference mode, not only in training mode?

A model can train well and still answer wrongly once deployed: BatchNormalization's moving statistics
that no longer describe the layers before it (pruned channels, a short fine-tune that moved them only a
little) make the model right with batch statistics and wrong with the stored ones. The loss falls and
nothing looks amiss until the final evaluation calls it ``over_budget``. This check names the step: on
images held apart from both the training and the evaluation images (the calibration split), it compares
the fine-tuned model's answers with the step's targets (the labels, or the model it started from) in
inference mode, and, when normalization layers are left, also in training mode. A model far worse in
inference mode than in training mode stops the recipe with that reason.
"""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.core.metrics import mcnemar_exact_p, top1_classes
from vggedge.models.normalization import normalization_layers

CHECK_IMAGES = 64
CHUNK = 16  # images per call: batch statistics in training mode need a few, the full VGG16 at 224 px few enough
# Training mode (batch statistics, dropout on) may be a little worse than inference mode, never far better:
# measured on every model form, the two differ by < 10 points after a healthy fine-tune.
MAX_MODE_GAP_PTS = 25.0
# A fine-tune that leaves its model this far under the model it started from, on the same held-apart images and
# targets, has failed whatever its loss says (a nested VGG19's filter-prune read 50% against its baseline's 66.7%
# and went on to fail verification): every shipped budget is a few points, so the recipe cannot end within it.
MAX_DROP_FROM_INPUT_PTS = 10.0
# ...and the drop must be more than the noise of so few images: on a weak model, whose answers are near-ties, a
# GAP head read 62% against 73% on 64 images (7 images) and lost only 2 points on the 153 evaluation images.
MAX_P = 0.01


class InferenceModeCollapse(RuntimeError):
    """The step's model is far less accurate in inference mode than in training mode."""


class FellShort(RuntimeError):
    """The fine-tuned model is far less accurate, on held-apart images, than the model the step started from."""


def _classes(model: keras.Model, images: np.ndarray, training: bool = False) -> np.ndarray:
    """Top-1 by direct calls in chunks: no predict function to trace for a model seen once, bounded memory."""
    return np.concatenate(
        [top1_classes(model(images[i : i + CHUNK], training=training).numpy()) for i in range(0, len(images), CHUNK)]
    )


def _training_mode_classes(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Top-1 with batch statistics; a direct call in training mode moves the moving averages, so they are
    put back after."""
    saved = [(layer, layer.get_weights()) for layer in normalization_layers(model)]
    try:
        return _classes(model, images, training=True)
    finally:
        for layer, weights in saved:
            layer.set_weights(weights)


def mode_agreements(model: keras.Model, images: np.ndarray, targets: np.ndarray) -> tuple[float, float | None]:
    """(inference-mode, training-mode) agreement of ``model`` with ``targets``; training mode only when normalization
    layers are left (without them the two modes differ by dropout alone)."""
    inference = float(np.mean(_classes(model, images) == targets))
    if not normalization_layers(model):
        return inference, None
    return inference, float(np.mean(_training_mode_classes(model, images) == targets))


def collapsed(inference: float, training: float | None) -> bool:
    """Far worse in inference mode than in training mode: stale normalization statistics."""
    return training is not None and (training - inference) * 100 > MAX_MODE_GAP_PTS


def check_inference_mode(
    step_name: str, before: keras.Model, after: keras.Model, images: np.ndarray, labels: np.ndarray | None
) -> dict:
    """{"images", "inference_agreement", "training_agreement"} for the step's record; raises
    :class:`InferenceModeCollapse` when inference mode is far worse than training mode."""
    images = images[:CHECK_IMAGES].astype(np.float32)
    before_classes = _classes(before, images)
    targets = labels[:CHECK_IMAGES] if labels is not None else before_classes
    before_right, after_right = before_classes == targets, _classes(after, images) == targets
    inference = float(np.mean(after_right))
    training = float(np.mean(_training_mode_classes(after, images) == targets)) if normalization_layers(after) else None
    figures = {"images": len(images), "against": "labels" if labels is not None else "the step's input model"}
    figures["inference_agreement"] = round(inference, 4)
    figures["input_agreement"] = round(float(np.mean(before_right)), 4)
    figures["lost"] = int(np.sum(before_right & ~after_right))  # images the input got right and the output not
    figures["gained"] = int(np.sum(~before_right & after_right))
    if training is None:
        return figures
    figures["training_agreement"] = round(training, 4)
    if collapsed(inference, training):
        raise InferenceModeCollapse(
            f"{step_name}: the fine-tuned model agrees with its targets on {inference:.0%} of {len(images)} held-apart "
            f"images in inference mode but {training:.0%} in training mode: its BatchNormalization statistics no "
            "longer describe the layers before them"
        )
    return figures


def require_near_input(step_name: str, figures: dict) -> None:
    """Raise :class:`FellShort` when the step's model ends far under the model it started from on the check's
    images (``figures`` from :func:`check_inference_mode`)."""
    after, before = figures["inference_agreement"], figures["input_agreement"]
    p = mcnemar_exact_p(figures.get("lost", 0), figures.get("gained", 0))
    if (before - after) * 100 > MAX_DROP_FROM_INPUT_PTS and p < MAX_P:
        raise FellShort(
            f"{step_name}: the fine-tuned model is right on {after:.0%} of {figures['images']} held-apart images "
            f"against {before:.0%} for the model it started from ({figures['against']}): more than "
            f"{MAX_DROP_FROM_INPUT_PTS:.0f} points lost ({figures.get('lost')} images lost, "
            f"{figures.get('gained')} gained, McNemar p = {p:.2g}), so no budget can be met from here"
        )


def stale_baseline_note(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> str | None:
    """A note when the user's own model is far less accurate in inference mode than in training mode, on held-apart
    images: its BatchNormalization statistics do not describe its weights (a VGG16-BN at full width trained
    6 epochs on the sample's digits: 98.7% of 300 images in training mode, 15% in inference mode; about 200 steps
    do not settle moving averages of momentum 0.99). Every figure is measured against that baseline, and a recipe
    whose steps re-estimate the statistics can come out far above it; said before the work, not discovered in it."""
    if not normalization_layers(model) or not len(images):
        return None
    images = images[:CHECK_IMAGES].astype(np.float32)
    inference, training = mode_agreements(model, images, labels[:CHECK_IMAGES])
    if not collapsed(inference, training):
        return None
    return (
        f"the baseline itself is right on {training:.0%} of {len(images)} held-apart images in training mode but "
        f"{inference:.0%} in inference mode: its BatchNormalization statistics do not describe its weights (trained "
        "too few steps for their momentum?). Recipes whose steps change weights re-estimate them and may score far "
        "above this baseline; train the model longer, or re-estimate its statistics, before comparing"
    )
