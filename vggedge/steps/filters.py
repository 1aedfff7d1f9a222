"""Structured (filter) pruning: remove whole conv filters and rebuild a thinner VGG16.

Unstructured pruning leaves the same dense tensors for the interpreter (XNNPACK has no sparse 3x3
kernels), so it only helps compressed size. Removing filters removes FLOPs: a conv layer keeping
a fraction r of its filters, after a layer that also kept r, costs about r^2 of its MACs.

Filters are ranked by the L1 norm of their kernels (Li et al., "Pruning Filters for Efficient
ConvNets"); the layer after each pruned conv loses the matching input channels, including the
first dense layer behind a Flatten (whose rows are laid out height x width x channel).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.backend.precision import FLOAT32, copy_weights, training_precision, with_policy
from vggedge.backend.training import PlateauStop, cosine_to_a_tenth, fit, total_steps
from vggedge.core.errors import UserError
from vggedge.models.anatomy import Anatomy, find_anatomy
from vggedge.models.flops import count_macs
from vggedge.recipe.schema import FilterPruneStep
from vggedge.steps.context import (
    DataCounts,
    StepContext,
    StepResult,
    classifier_loss,
    float_bytes,
    frozen_layers,
    held_apart_targets,
    set_trainable,
    target_floor,
    training_targets,
)
from vggedge.steps.reconstruct import STEP_REFIT_IMAGES, first_images, reconstruct


def kept_count(filters: int, ratio: float) -> int:
    """How many of ``filters`` survive removing ``ratio`` of them: ceil((1 - ratio) * n), at least one."""
    return max(1, int(np.ceil((1.0 - ratio) * filters)))


def filters_to_keep(kernel: np.ndarray, ratio: float) -> np.ndarray:
    """Sorted indices of the filters with the largest L1 norms, :func:`kept_count` of them."""
    n = kernel.shape[-1]
    norms = np.abs(kernel).reshape(-1, n).sum(axis=0)
    return np.sort(np.argsort(-norms, kind="stable")[: kept_count(n, ratio)])


Ratios = float | Mapping[str, float]  # one ratio for every named layer, or each layer its own


def per_layer(ratio: Ratios, names: Collection[str] = ()) -> dict[str, float]:
    """{layer: fraction of its filters removed}: a uniform ``ratio`` over ``names``, or the mapping itself."""
    return dict(ratio) if isinstance(ratio, Mapping) else {name: float(ratio) for name in names}


def block_layer_ratios(anatomy: Anatomy, block_ratios: list[float]) -> dict[str, float]:
    """Per-block ratios (block 1 first) as per-layer ones; blocks at 0 are left whole."""
    return {name: ratio for block, ratio in zip(anatomy.blocks, block_ratios, strict=True) for name in block if ratio}


def _copy_layer(layer: keras.layers.Layer, **overrides) -> keras.layers.Layer:  # noqa: ANN003
    config = layer.get_config()
    config.update(overrides)
    return layer.__class__.from_config(config)


def thin_model(
    model: keras.Model, ratio: Ratios, names: Collection[str] = (), kept: dict[str, np.ndarray] | None = None
) -> tuple[keras.Model, dict[str, tuple[int, int]]]:
    """A copy of the chain ``model`` with filters removed from the conv layers ``names`` (or from each
    layer of a ``ratio`` mapping, by its own ratio). ``kept``, when given, receives each thinned layer's
    surviving filter indices.

    Returns the thinner model (weights carried over) and {layer: (filters before, after)}. A
    BatchNormalization after a thinned convolution keeps the statistics of the surviving channels.
    """
    ratios = per_layer(ratio, names)
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x = inputs
    channels: np.ndarray | None = None  # indices of the previous layer's output channels that survive
    flatten_grid: tuple[int, int] | None = None
    widths: dict[str, tuple[int, int]] = {}
    for layer in model.layers[1:]:
        if len(layer._inbound_nodes) != 1 or isinstance(layer.input, list):
            raise UserError(f"filter pruning needs a chain-shaped model; layer {layer.name!r} is not in a chain")
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.Conv2D):
            kernel, rest = weights[0], weights[1:]
            if channels is not None:
                kernel = kernel[:, :, channels, :]
            if layer.name in ratios:
                keep = filters_to_keep(kernel, ratios[layer.name])
                kernel, rest = kernel[..., keep], [b[keep] for b in rest]
                widths[layer.name] = (layer.filters, len(keep))
                if kept is not None:
                    kept[layer.name] = keep
                channels = keep
            else:
                channels = None
            new = _copy_layer(layer, filters=kernel.shape[-1])
            x = new(x)
            new.set_weights([kernel, *rest])
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and channels is not None:
            weights = [w[channels] for w in weights]
        elif isinstance(layer, keras.layers.Flatten):
            flatten_grid = tuple(int(d) for d in layer.input_shape[1:3])
        elif isinstance(layer, keras.layers.Dense) and channels is not None:
            kernel = weights[0]
            if flatten_grid is not None:
                full_channels = kernel.shape[0] // (flatten_grid[0] * flatten_grid[1])
                kernel = kernel.reshape(*flatten_grid, full_channels, -1)[:, :, channels, :]
                kernel = kernel.reshape(-1, kernel.shape[-1])
            else:
                kernel = kernel[channels]
            weights = [kernel, *weights[1:]]
            channels, flatten_grid = None, None
        elif not isinstance(
            layer,
            (
                keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D,
                keras.layers.Activation,
                keras.layers.ReLU,
                keras.layers.Dropout,
                keras.layers.Rescaling,
                keras.layers.Normalization,
                keras.layers.GlobalAveragePooling2D,
                keras.layers.GlobalMaxPooling2D,
                keras.layers.Dense,
                keras.layers.Softmax,
                keras.layers.BatchNormalization,
            ),
        ):
            raise UserError(
                f"filter pruning does not know how layer {layer.name!r} ({type(layer).__name__}) uses channels"
            )
        new = _copy_layer(layer)
        x = new(x)
        if weights:
            new.set_weights(weights)
    if not widths:
        raise UserError(f"filter-prune: none of {sorted(ratios)} is a convolution of {model.name!r}")
    return keras.Model(inputs, x, name=f"{model.name}_thin"), widths


def thin_macs(model: keras.Model, ratio: Ratios, names: Collection[str] = ()) -> int:
    """The MACs ``thin_model(model, ratio, names)`` would have, counted from shapes without building it."""
    return thin_counts(model, ratio, names)[0]


def thin_counts(model: keras.Model, ratio: Ratios, names: Collection[str] = ()) -> tuple[int, int]:
    """(MACs, conv and dense kernel weights) that ``thin_model(model, ratio, names)`` would have, from shapes.
    Batch-1 latency follows the MACs where feature maps are large and the weights where they are small
    (a VGG's last blocks at a small input read far more weight bytes than they compute)."""
    ratios = per_layer(ratio, names)
    macs, weights, kept, grid = 0, 0, None, None  # kept: surviving channels of the last pruned conv, if it feeds on
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            in_channels = kept if kept is not None else int(layer.input_shape[-1])
            out_channels = layer.filters
            if layer.name in ratios:
                out_channels = kept_count(layer.filters, ratios[layer.name])
                kept = out_channels
            else:
                kept = None
            out_h, out_w = layer.output_shape[1:3]
            kernel = layer.kernel_size[0] * layer.kernel_size[1] * in_channels * out_channels
            macs += int(out_h) * int(out_w) * kernel
            weights += kernel
        elif isinstance(layer, keras.layers.Flatten):
            grid = int(np.prod(layer.input_shape[1:3]))
        elif isinstance(layer, keras.layers.Dense):
            rows = int(layer.kernel.shape[0]) if kept is None else kept * (grid or 1)
            macs += rows * layer.units
            weights += rows * layer.units
            kept, grid = None, None
    return macs, weights


def ratio_for_flops(model: keras.Model, target: float, names: Collection[str]) -> float:
    """The smallest uniform ratio whose thinner model keeps at most ``target`` of the MACs (bisection)."""
    full = count_macs(model)
    if thin_macs(model, 0.0, names) <= target * full:
        return 0.0
    low, high = 0.0, 0.999
    if thin_macs(model, high, names) > target * full:
        raise ValueError(f"filter-prune flops_target={target} is out of reach by thinning {len(names)} layers only")
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (low, middle) if thin_macs(model, middle, names) <= target * full else (middle, high)
    return float(min(0.999, np.ceil(high * 1e4) / 1e4))  # round up: more pruning never adds MACs


def check(step: FilterPruneStep, anatomy: Anatomy, data: DataCounts) -> Anatomy:
    """The selector picks convolutions only, and there are images to fine-tune on."""
    chosen = anatomy.select(step.layers)
    dense = [name for name in chosen if name not in anatomy.convs]
    if dense:
        raise UserError(
            f"filter-prune removes conv filters, but layers={step.layers!r} selects dense layers "
            f"({', '.join(dense)}): use conv, blockN-M or a name: selector of convolutions"
        )
    if step.block_ratios is not None and len(step.block_ratios) != len(anatomy.blocks):
        raise UserError(
            f"filter-prune: block_ratios has {len(step.block_ratios)} values but {anatomy.name!r} has "
            f"{len(anatomy.blocks)} conv blocks: give one ratio per block, block 1 first"
        )
    if step.epochs:
        data.require_training_images(f"filter pruning with a {step.epochs}-epoch fine-tune")
    return anatomy


def describe_ratios(ratio: Ratios) -> str:
    """``50%``, or ``0-75% per layer`` for per-layer ratios (progress lines)."""
    if not isinstance(ratio, Mapping):
        return f"{ratio:.0%}"
    values = sorted(set(ratio.values()))
    return f"{values[0]:.0%}" if len(values) == 1 else f"{values[0]:.0%}-{values[-1]:.0%} per layer"


def step_ratios(step: FilterPruneStep, model: keras.Model) -> Ratios:
    """What the step removes: its uniform ratio, the ratio that meets its FLOPs target, or per-layer ratios
    from its per-block ones."""
    anatomy = find_anatomy(model)
    if step.block_ratios is not None:
        return block_layer_ratios(anatomy, step.block_ratios)
    names = set(anatomy.select(step.layers))
    ratio = step.ratio if step.ratio is not None else ratio_for_flops(model, step.flops_target, names)
    return ratio


def apply(step: FilterPruneStep, model: keras.Model, context: StepContext) -> StepResult:
    macs_before = count_macs(model)
    names = set(find_anatomy(model).select(step.layers))
    ratio = step_ratios(step, model)
    trained = not context.synthetic and step.epochs > 0
    precision = training_precision() if trained else None
    frozen = frozen_layers(model)
    targets, are_labels = training_targets(model, context, step.batch_size, distill=step.train == "distill")
    validation = held_apart_targets(model, context, are_labels) if trained and step.patience else None
    losses: list[float] = []
    refitted: list[str] = []
    with context.placement.strategy.scope():
        kept: dict[str, np.ndarray] = {}
        thin, widths = thin_model(model, ratio, names, kept=kept)
        if step.refit and not context.synthetic and len(context.train):
            refitted = reconstruct(model, thin, kept, first_images(context.train, STEP_REFIT_IMAGES), seed=context.seed)
        learner = thin
        if trained:
            # Removing whole filters is a large perturbation: the thinner network is retrained for a few
            # epochs with a cosine-decayed rate, like a short training run from a good start.
            steps = total_steps(len(context.train), step.batch_size, step.epochs, context.placement)
            schedule = cosine_to_a_tenth(context.learning_rate(step.learning_rate), steps)
            if precision.policy != FLOAT32:  # a twin computing in bfloat16; its float32 weights come back below
                learner = with_policy(thin, precision.policy)
            set_trainable(learner, frozen, True)  # a frozen base cannot recover from losing filters: trains here only
            learner.compile(keras.optimizers.Adam(schedule), classifier_loss(model, are_labels))
    plateau = None
    if validation is not None:  # the start is a candidate too: a refit may already be better than any epoch
        start_loss = learner.evaluate(*validation, batch_size=step.batch_size, verbose=0) if step.refit else None
        plateau = PlateauStop(step.patience, start_loss=start_loss)
    if trained:
        losses = fit(
            learner,
            context.train,
            targets,
            step.epochs,
            step.batch_size,
            f"Fine-tuning after removing {describe_ratios(ratio)} of the filters",
            context.progress,
            callbacks=[plateau] if plateau else None,
            placement=context.placement,
            validation=validation,
        )
    set_trainable(learner, frozen, False)
    if learner is not thin:
        copy_weights(learner, thin)
    macs_after = count_macs(thin)
    record = {
        **step.model_dump(mode="json"),
        "ratio_used": ratio if not isinstance(ratio, Mapping) else None,
        "block_ratios_used": step.block_ratios,
        "fine_tuned": trained,
        "precision": precision.describe() if precision else None,
        "targets": ("labels" if are_labels else "distillation") if trained else None,
        "loss_per_epoch": losses,
        "loss_floor": target_floor(model, targets, are_labels) if trained else None,
        **(plateau.figures() if plateau else {}),
        "filters": {name: list(pair) for name, pair in widths.items()},
        "macs_before": macs_before,
        "macs_after": macs_after,
        "flops_ratio": round(macs_after / macs_before, 4),
        "params": int(thin.count_params()),
        "float32_bytes": float_bytes(thin),
        "unfrozen_for_fine_tune": frozen if trained else [],
        "refitted": refitted,
    }
    return StepResult(thin, record)
