"""After filters are removed: refit the layers whose inputs changed so they answer as before (least squares).

Removing filters from a conv block changes the input of every layer downstream that read them. A short
fine-tune by gradient descent repairs that only slowly: on the sample VGG16, one pass over 512 images at
the `fast` recipe's rate left a block-2 cut at 64.5% search-split top-1 (from 99%), three passes at
79.5%, and a five-times larger rate broke it (10%). The damage is mostly linear, though: each layer
whose input channels were cut can be refitted so its pre-activation outputs match the unpruned model's
on a few images (He et al., "Channel Pruning for Accelerating Very Deep Neural Networks", ICCV 2017;
ThiNet, ICCV 2017). One ridge regression per layer, in model order, each on the inputs the thinned model
actually gives it, so later layers also absorb the error of earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.models.anatomy import chain_layers

# Training images a refit sees. The search ranks candidates right after their refit: 256. The filter-prune step
# fine-tunes after it, so 64 do (sample, cuts to 1/4-3/4 of one block: 96.5-99.0% search-split top-1 after a
# 64-image refit, 98.0-99.0% after a 256-image one, in a third of the time on the large layers).
REFIT_IMAGES = 256
STEP_REFIT_IMAGES = 64
MAX_ROWS = 20_000  # sampled output positions per layer: the solve stays small at any input size
CHUNK = 16  # images per forward pass
# Walk both models layer by layer from the first refitted layer (one forward pass in all) when their activations there
# and after, for every image, fit in this; else one forward pass per refitted layer from the pixels (a 224-pixel
# VGG16 cut in its first block: 13 GB for 256 images; cut in block 5: 0.4 GB, walked).
WALK_BYTES = 1_500_000_000
RIDGE = 1e-3  # relative to the mean diagonal of the normal matrix


def refit_image_count(model: keras.Model) -> int:
    """Images the search's refits decode and run: enough for :data:`MAX_ROWS` sampled positions at the smallest conv
    output grid (more add nothing to any solve but forward passes), between :data:`STEP_REFIT_IMAGES` and
    :data:`REFIT_IMAGES`. A 32-pixel VGG16 (2x2 in block 5) needs all 256; at 224 pixels (14x14) 103 suffice,
    and each refit image there costs a full-size forward pass per refitted layer."""
    grids = [int(np.prod(layer.output_shape[1:3])) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    smallest = max(1, min(grids, default=1))
    return int(min(REFIT_IMAGES, max(STEP_REFIT_IMAGES, -(-MAX_ROWS // smallest))))


def first_images(images, count: int = REFIT_IMAGES) -> np.ndarray:  # noqa: ANN001 - a Split or FileSplit
    """The first ``count`` of a split's images as a decoded array."""
    chosen = images if len(images) <= count else images.first(count)
    return chosen.decoded().images if hasattr(chosen, "decoded") else chosen.images


def _probe(model: keras.Model, name: str) -> keras.Model:
    return keras.Model(model.input, model.get_layer(name).input)


def _grid(layer: keras.layers.Layer, height: int, width: int) -> tuple[int, int, int, int]:
    """(output rows, output columns, padding above, padding left) of a conv layer, as TensorFlow pads."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if layer.padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h, pad_w = max((out_h - 1) * sh + span_h - height, 0), max((out_w - 1) * sw + span_w - width, 0)
        return out_h, out_w, pad_h // 2, pad_w // 2
    return (height - span_h) // sh + 1, (width - span_w) // sw + 1, 0, 0


def _row_count(layer: keras.layers.Layer, shape: tuple[int, ...]) -> int:
    """How many rows a layer's input of ``shape`` gives: one per output position (conv) or per vector (dense)."""
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(shape[:-1]))
    out_h, out_w, _, _ = _grid(layer, shape[1], shape[2])
    return shape[0] * out_h * out_w


def _sampled_rows(layer: keras.layers.Layer, inputs: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The layer's input as rows of a linear map (conv patches in kernel row, column, channel order, as
    ``tf.image.extract_patches`` gives them, or flat vectors) at the flat output positions ``chosen`` only, gathered
    without building every patch: a 224-pixel VGG16's conv1_2 has
    576-wide patches at 50,176 positions per image (1.85 GB for a chunk of 16 images, in each of the two models),
    of which the refit keeps at most :data:`MAX_ROWS` in all."""
    if isinstance(layer, keras.layers.Dense):
        return inputs.reshape(-1, inputs.shape[-1])[chosen]
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    count, height, width, channels = inputs.shape
    out_h, out_w, top, left = _grid(layer, height, width)
    image, position = np.divmod(chosen, out_h * out_w)
    row, column = np.divmod(position, out_w)
    ys = (row * sh - top)[:, None, None] + (np.arange(kh) * dh)[None, :, None]
    xs = (column * sw - left)[:, None, None] + (np.arange(kw) * dw)[None, None, :]
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)  # outside: the zero padding
    windows = inputs[image[:, None, None], np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)]
    windows *= inside[..., None]
    return windows.reshape(len(chosen), kh * kw * channels)


def _refit(
    source: keras.layers.Layer,
    target: keras.layers.Layer,
    inputs: Iterable[tuple[np.ndarray, np.ndarray]],
    filters: np.ndarray,
    images: int,
    rng: np.random.Generator,
) -> None:
    """One layer's ridge regression on rows sampled chunk by chunk from ``inputs`` (per chunk of images, the
    layer's input in the original model and in the thin one): memory stays that of one chunk's patches plus
    :data:`MAX_ROWS` rows at any input size (a 224-pixel VGG16's first block has 50,176 positions per image)."""
    kernel, *bias = source.get_weights()
    flat = kernel.reshape(-1, kernel.shape[-1])
    if not np.array_equal(filters, np.arange(flat.shape[1])):  # a layer that kept all its filters: no 0.4 GB copy
        flat = flat[:, filters]
    offset = bias[0][filters] if bias else 0.0
    per_chunk = max(1, MAX_ROWS * CHUNK // images)
    rows, targets = [], []
    for original_input, thin_input in inputs:
        total = _row_count(source, original_input.shape)
        chosen = rng.choice(total, min(per_chunk, total), replace=False)
        rows.append(_sampled_rows(target, thin_input, chosen))
        targets.append(_sampled_rows(source, original_input, chosen) @ flat + offset)
    design = np.hstack([np.concatenate(rows), np.ones((sum(len(r) for r in rows), 1), np.float32)])
    solution = ridge_solve(design.astype(np.float32, copy=False), np.concatenate(targets).astype(np.float32))
    new_kernel = solution[:-1].astype(np.float32, copy=False).reshape(target.kernel.shape)
    target.set_weights([new_kernel, solution[-1].astype(np.float32)] if target.use_bias else [new_kernel])


def ridge_solve(design: np.ndarray, targets: np.ndarray, dual: bool | None = None) -> np.ndarray:
    """The ridge solution of ``design @ w ~ targets`` (the last column of ``design`` is the bias, not penalised).

    With at least as many rows as inputs, through the normal matrix, most of a refit's time: on VGG16's 512-channel
    layers, 20,000 rows of 4,609 inputs. Its product is taken in float32 (measured on this shape: 4.7 s against
    float64's 9.7 s on a busy 2-core Xeon; OpenBLAS's symmetric rank-k update was no faster, 4.9 s) and the system
    solved in float64. On post-ReLU-like features the predictions differ from an all-float64 fit by about 1e-5 of
    their largest value. With fewer rows than inputs (``dual``, by default then), the same solution from the rows'
    own Gram matrix, centred (an unpenalised bias is a centred fit): a dense layer after a 224-pixel VGG16's
    flatten has 25,089 inputs and one row per image, and its normal matrix alone would be 5 GB in float64."""
    rows, inputs = design.shape[0], design.shape[1] - 1
    penalty = RIDGE * (float(np.sum(np.square(design, dtype=np.float64))) / (inputs + 1))
    if dual is None:
        dual = rows < inputs + 1
    if not dual:
        gram = (design.T @ design).astype(np.float64)
        moment = (design.T @ targets).astype(np.float64)
        gram[np.arange(inputs), np.arange(inputs)] += penalty
        return np.linalg.solve(gram, moment)
    # float32 products, float64 solve, as above: fc1's 25,088 x 4,096 weights are 0.4 GB in float32 and twice that
    # in float64 (one refit of a 224-pixel VGG16 with its flatten head peaked at 4.45 GB with float64 here)
    features = design[:, :-1]
    mean_features = features.mean(axis=0, dtype=np.float64)
    mean_targets = targets.mean(axis=0, dtype=np.float64)
    centred = features - mean_features.astype(np.float32)
    kernel = (centred @ centred.T).astype(np.float64)
    kernel[np.arange(rows), np.arange(rows)] += penalty
    coefficients = np.linalg.solve(kernel, targets.astype(np.float64) - mean_targets).astype(np.float32)
    solution = np.empty((inputs + 1, targets.shape[1]), np.float32)
    solution[:-1] = centred.T @ coefficients
    solution[-1] = mean_targets - mean_features @ solution[:-1]
    return solution


def changed_inputs(original: keras.Model, thin: keras.Model) -> list[str]:
    """Conv and dense layers of ``thin`` that read fewer input channels than in ``original``, in model order."""
    return [
        layer.name
        for layer in thin.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        and layer.kernel.shape[-2] != original.get_layer(layer.name).kernel.shape[-2]
    ]


def reconstruct(
    original: keras.Model, thin: keras.Model, kept: dict[str, np.ndarray], images: np.ndarray, seed: int = 0
) -> list[str]:
    """Refit, in place, each layer of ``thin`` whose inputs were cut (see :func:`changed_inputs`) so that its
    pre-activation outputs (the filters it kept, ``kept``) match ``original``'s on ``images``. Returns the
    refitted layers' names. ``thin`` must come from :func:`vggedge.steps.filters.thin_model` on ``original``."""
    rng = np.random.default_rng(seed)
    images = images.astype(np.float32)
    names = changed_inputs(original, thin)
    if not names:
        return names
    if _activation_bytes(original, len(images), names[0]) <= WALK_BYTES:
        _refit_walking(original, thin, kept, names, images, rng)
        return names
    for name in names:  # in order: each layer's input includes the refits before it
        source, target = original.get_layer(name), thin.get_layer(name)
        probes = _probe(original, name), _probe(thin, name)
        inputs = (
            (probes[0](chunk, training=False).numpy(), probes[1](chunk, training=False).numpy())
            for chunk in _chunks(images)
        )
        _refit(source, target, inputs, _filters(source, kept), len(images), rng)
    return names


def _chunks(images: np.ndarray) -> list[np.ndarray]:
    return [images[start : start + CHUNK] for start in range(0, len(images), CHUNK)]


def _filters(source: keras.layers.Layer, kept: dict[str, np.ndarray]) -> np.ndarray:
    return kept.get(source.name, np.arange(source.get_weights()[0].shape[-1]))


def _activation_bytes(model: keras.Model, images: int, first: str) -> int:
    """What walking both models layer by layer from layer ``first`` holds at its peak: the largest input or output
    of a layer from there on, for every image, in both models, while the next one is computed. The layers before
    ``first`` are run chunk by chunk, holding nothing."""
    layers = chain_layers(model)
    start = next(i for i, layer in enumerate(layers) if layer.name == first)
    largest = max(int(np.prod(layer.input.shape[1:])) for layer in layers[start:])
    largest = max(largest, *(int(np.prod(layer.output.shape[1:])) for layer in layers[start:]))
    return 4 * largest * images * 4


def _refit_walking(
    original: keras.Model,
    thin: keras.Model,
    kept: dict[str, np.ndarray],
    names: list[str],
    images: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """The refits in one pass down both chains from the first refitted layer, each layer's inputs carried from the
    layer before (the thin model's after that layer's own refit), instead of a forward pass from the pixels per
    refitted layer: on the sample's VGG16 (random weights, 256 images) with every block cut (13 refits) the forward
    passes were 27.6 s of a 50.4 s refit; walking took 17.8 s and 31.6 s against 46.9 s probing, in one run beside
    another benchmark."""
    pending = set(names)
    # Up to the first refitted layer, both models run chunk by chunk: a 224-pixel VGG16's block 1 would hold 13 GB
    # for 256 images, where a cut of block 5 walks from 14x14x512 (0.4 GB in all); from there on, one pass.
    probes = _probe(original, names[0]), _probe(thin, names[0])
    original_inputs = [probes[0](chunk, training=False).numpy() for chunk in _chunks(images)]
    thin_inputs = [probes[1](chunk, training=False).numpy() for chunk in _chunks(images)]
    pairs = list(zip(chain_layers(original), chain_layers(thin), strict=True))
    start = next(i for i, (source, _) in enumerate(pairs) if source.name == names[0])
    for source, target in pairs[start:]:
        if target.name in pending:
            chunk_pairs = zip(original_inputs, thin_inputs, strict=True)
            _refit(source, target, chunk_pairs, _filters(source, kept), len(images), rng)
            pending.discard(target.name)
        if not pending:
            return
        original_inputs = [source(chunk, training=False).numpy() for chunk in original_inputs]
        thin_inputs = [target(chunk, training=False).numpy() for chunk in thin_inputs]
