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

import dataclasses
from collections.abc import Iterable

import numpy as np

from vggedge.backend.keras_env import keras, tf
from vggedge.models.anatomy import chain_layers

# Training images a refit sees. The search ranks candidates right after their refit: 256. The filter-prune step
# fine-tunes after it, so 64 do (sample, cuts to 1/4-3/4 of one block: 96.5-99.0% search-split top-1 after a
# 64-image refit, 98.0-99.0% after a 256-image one, in a third of the time on the large layers).
REFIT_IMAGES = 256
STEP_REFIT_IMAGES = 64
MAX_ROWS = 20_000  # sampled output positions per layer: the solve stays small at any input size
CHUNK = 16  # images per forward pass
# Walk the thin model layer by layer from the first refitted layer (one forward pass in all) when its activations
# there and after, for every image, fit in this; else one forward pass per refitted layer from where the refit
# starts, chunk by chunk (a 224-pixel VGG16 whose block 1 is cut to 3/4 at 103 images: 2.0 GB).
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


def ridge_solve(
    design: np.ndarray, targets: np.ndarray, dual: bool | None = None, prior: np.ndarray | None = None
) -> np.ndarray:
    """The ridge solution of ``design @ w ~ targets`` (the last column of ``design`` is the bias, not penalised).

    With at least as many rows as inputs, through the normal matrix, most of a refit's time: on VGG16's 512-channel
    layers, 20,000 rows of 4,609 inputs. Its product is taken in float32 (measured on this shape: 4.7 s against
    float64's 9.7 s on a busy 2-core Xeon; OpenBLAS's symmetric rank-k update was no faster, 4.9 s) and the system
    solved in float64. On post-ReLU-like features the predictions differ from an all-float64 fit by about 1e-5 of
    their largest value. With fewer rows than inputs (``dual``, by default then), the same solution from the rows'
    own Gram matrix, centred (an unpenalised bias is a centred fit): a dense layer after a 224-pixel VGG16's
    flatten has 25,089 inputs and one row per image, and its normal matrix alone would be 5 GB in float64.

    ``prior``: the kernel to stay near instead of zero (the penalty is on ``w - prior``). Where the rows cannot
    determine the kernel (fewer rows than inputs: a dense layer after the last block sees one row per image), the
    directions no refit image spans keep the layer's own weights instead of being zeroed, as they would be in the
    minimum-norm solution."""
    if prior is not None:
        solution = ridge_solve(design, targets - design[:, :-1] @ prior, dual)
        solution[:-1] += prior
        return solution
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


@dataclasses.dataclass
class Targets:
    """What every refit against one starting model asks of it, computed once (:func:`starting_targets`): for each
    conv or dense layer that can lose input channels, fixed sampled positions of its output over the refit images
    and the starting model's pre-activation outputs there.

    A search refits after every cut against the same starting model; with these it runs only the thin model. The
    positions are fixed per layer, so refitting a layer whose inputs did not change gives the same weights again:
    a refit can start at the block a cut changed (``start`` in :func:`reconstruct`)."""

    images: np.ndarray  # float32
    positions: dict[str, np.ndarray]  # sorted flat indices: image * rows per image + row
    outputs: dict[str, np.ndarray]  # (positions, filters) float32


def starting_targets(original: keras.Model, images: np.ndarray, seed: int = 0) -> Targets:
    """:class:`Targets` of ``original`` on ``images``: one forward pass, chunk by chunk, holding only the sampled
    outputs (at most :data:`MAX_ROWS` per layer: 0.3 GB for a 224-pixel VGG16's thirteen layers)."""
    images = images.astype(np.float32)
    layers = chain_layers(original)
    weighted = [layer for layer in layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    positions = {}
    for index, layer in enumerate(weighted[1:]):  # the first reads the pixels: its inputs are never cut
        total = _row_count(layer, (len(images), *layer.input_shape[1:]))
        chosen = np.random.default_rng([seed, index]).choice(total, min(MAX_ROWS, total), replace=False)
        positions[layer.name] = np.sort(chosen)
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in positions}
    for first, chunk in _chunks(images):
        activations = chunk
        for layer in layers:
            if layer.name in positions:
                rows = _sampled_rows(layer, activations, _in_chunk(layer, positions[layer.name], first, activations))
                kernel = tf.reshape(layer.kernel, [-1, layer.kernel.shape[-1]])  # a view: fc1 alone is 0.4 GB
                output = tf.matmul(rows, kernel) + (layer.bias if layer.use_bias else 0.0)
                pieces[layer.name].append(output.numpy())
            activations = np.asarray(layer(activations, training=False))
    outputs = {name: np.concatenate(chunks) for name, chunks in pieces.items()}
    return Targets(images, positions, outputs)


def _in_chunk(layer: keras.layers.Layer, positions: np.ndarray, first: int, inputs: np.ndarray) -> np.ndarray:
    """The flat positions among ``positions`` that fall in the chunk of images starting at image ``first``, as
    positions within the chunk."""
    per_image = _row_count(layer, (1, *inputs.shape[1:]))
    low, high = np.searchsorted(positions, [first * per_image, (first + len(inputs)) * per_image])
    return positions[low:high] - first * per_image


@dataclasses.dataclass
class Start:
    """Where a refit may begin: the thin model's input to ``layer`` on each chunk of the refit images. The model the
    thin one was cut from, refitted already, gives the same there when the cut is in ``layer``'s block: ``layer``
    and the layers before it keep their weights (their inputs did not change), the layers after it are refitted."""

    layer: str
    chunks: list[np.ndarray]


def inputs_to(model: keras.Model, name: str, chunks: list[np.ndarray], first: str | None = None) -> list[np.ndarray]:
    """``model``'s input to layer ``name`` on each of ``chunks`` (the inputs to layer ``first``; the pixels by
    default), layer by layer."""
    layers = chain_layers(model)
    begin = 0 if first is None else _index(layers, first)
    segment = layers[begin : _index(layers, name)]
    return [_run(segment, chunk) for chunk in chunks]


def outputs_from(model: keras.Model, first: str, chunks: list[np.ndarray]) -> np.ndarray:
    """``model``'s outputs for ``chunks``, the inputs to its layer ``first``, running the layers from there on."""
    layers = chain_layers(model)
    segment = layers[_index(layers, first) :]
    return np.concatenate([_run(segment, chunk) for chunk in chunks])


def reconstruct(
    original: keras.Model,
    thin: keras.Model,
    kept: dict[str, np.ndarray],
    images: np.ndarray,
    seed: int = 0,
    targets: Targets | None = None,
    start: Start | None = None,
) -> list[str]:
    """Refit, in place, each layer of ``thin`` whose inputs were cut (see :func:`changed_inputs`) so that its
    pre-activation outputs (the filters it kept, ``kept``) match ``original``'s on ``images``. Returns the
    refitted layers' names. ``thin`` must come from :func:`vggedge.steps.filters.thin_model` on ``original`` (or on
    a model cut from it). ``targets``: :func:`starting_targets` of ``original`` on ``images``, when the caller
    refits against it often. ``start``: begin there, leaving the layers before it as they are (refitted already,
    on the same inputs)."""
    names = changed_inputs(original, thin)
    if not names:
        return names
    targets = targets or starting_targets(original, images, seed)
    layers = chain_layers(thin)
    if start is not None:
        names = [name for name in names if _index(layers, name) > _index(layers, start.layer)]
        if not names:
            return names
    else:
        start = Start(layers[0].name, image_chunks(targets.images))
    sources = {name: (original.get_layer(name), _filters(original.get_layer(name), kept)) for name in names}
    if _walk_bytes(layers, names[0], names[-1], len(targets.images)) <= WALK_BYTES:
        # From the first refitted layer on, every image's activations are held (a 224-pixel VGG16 cut in block 1
        # at 1/2: 1.3 GB for 103 images); the layers before it run chunk by chunk
        first = Start(names[0], inputs_to(thin, names[0], start.chunks, first=start.layer))
        _refit_walking(layers, names, targets, sources, first)
    else:  # one pass from the start per refitted layer, chunk by chunk, nothing held
        for name in names:  # in order: each layer's input includes the refits before it
            inputs = (_run(layers[_index(layers, start.layer) : _index(layers, name)], c) for c in start.chunks)
            _refit(thin.get_layer(name), inputs, targets, *sources[name])
    return names


def _refit(
    target: keras.layers.Layer,
    inputs: Iterable[np.ndarray],
    targets: Targets,
    source: keras.layers.Layer,
    filters: np.ndarray,
) -> None:
    """One layer's ridge regression: its rows gathered chunk by chunk from ``inputs`` (its input in the thin model,
    per chunk of the refit images) at the starting model's sampled positions, against that model's outputs there."""
    positions, first, rows = targets.positions[source.name], 0, []
    for chunk in inputs:
        rows.append(_sampled_rows(target, chunk, _in_chunk(target, positions, first, chunk)))
        first += len(chunk)
    design = np.concatenate(rows)
    design = np.hstack([design, np.ones((len(design), 1), np.float32)])
    wanted = targets.outputs[source.name]
    if len(filters) != wanted.shape[1] or not np.array_equal(filters, np.arange(wanted.shape[1])):
        wanted = wanted[:, filters]
    prior = None
    if len(design) < design.shape[1]:  # fewer rows than unknowns: a dense layer after the last block (one per image)
        prior = target.get_weights()[0].reshape(-1, target.kernel.shape[-1])
    solution = ridge_solve(design.astype(np.float32, copy=False), wanted.astype(np.float32, copy=False), prior=prior)
    new_kernel = solution[:-1].astype(np.float32, copy=False).reshape(target.kernel.shape)
    target.set_weights([new_kernel, solution[-1].astype(np.float32)] if target.use_bias else [new_kernel])


def _refit_walking(
    layers: list[keras.layers.Layer],
    names: list[str],
    targets: Targets,
    sources: dict[str, tuple[keras.layers.Layer, np.ndarray]],
    start: Start,
) -> None:
    """The refits in one pass down the thin chain from ``start``, each layer's input carried from the layer before
    (after that layer's own refit), chunk by chunk in place, instead of a pass from the start per refitted layer."""
    pending = set(names)
    chunks = list(start.chunks)  # a copy of the list: the caller's chunks are not overwritten
    for layer in layers[_index(layers, start.layer) :]:
        if layer.name in pending:
            _refit(layer, chunks, targets, *sources[layer.name])
            pending.discard(layer.name)
        if not pending:
            return
        for index, chunk in enumerate(chunks):
            chunks[index] = np.asarray(layer(chunk, training=False))


def _run(layers: list[keras.layers.Layer], chunk: np.ndarray) -> np.ndarray:
    for layer in layers:
        chunk = layer(chunk, training=False)
    return np.asarray(chunk)


def _index(layers: list[keras.layers.Layer], name: str) -> int:
    return next(index for index, layer in enumerate(layers) if layer.name == name)


def image_chunks(images: np.ndarray) -> list[np.ndarray]:
    """``images`` as float32 chunks of :data:`CHUNK`: what a refit runs its forward passes on."""
    return [chunk.astype(np.float32, copy=False) for _, chunk in _chunks(images)]


def _chunks(images: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(start, images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)]


def _filters(source: keras.layers.Layer, kept: dict[str, np.ndarray]) -> np.ndarray:
    return kept.get(source.name, np.arange(source.kernel.shape[-1]))


def _walk_bytes(layers: list[keras.layers.Layer], first: str, last: str, images: int) -> int:
    """What walking the thin chain from layer ``first`` to layer ``last`` holds at its peak: the largest input and
    output of a layer on the way, for every image."""
    segment = layers[_index(layers, first) : _index(layers, last) + 1]
    largest = max(int(np.prod(layer.input_shape[1:])) + int(np.prod(layer.output_shape[1:])) for layer in segment)
    return 4 * largest * images
