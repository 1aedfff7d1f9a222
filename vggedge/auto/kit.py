"""The profiling kit: one small TFLite file per piece of a VGG at every width the search can give it.

NetAdapt (Yang et al., ECCV 2018) predicts a candidate's latency on the device from per-layer lookup
tables measured there. The TFLite Python interpreter has no per-op profiler, and the device has no
TensorFlow to build models with, so the tables are made in two halves:

- here, on the workstation, a *kit*: for every conv layer of the model (with what follows it up to the next
  conv: activation, normalization, pooling) and every (input width level, output width level) the search's
  per-block levels can give it, a single-piece int8 TFLite file; the head at every width of the last block,
  kept and swapped for global average pooling; and whole models: the uniform shapes (every block at one level,
  each head), whose measured times set what the pieces' sum leaves out (:mod:`vggedge.device.latency_table`
  says why that depends on the shape), and mixed shapes that check the prediction;
- on the device, ``vggedge bench --profile KIT`` (:mod:`vggedge.device.profile`) times every file and writes the
  table that ``optimize --recipe auto --time-on TABLE.json`` reads (:mod:`vggedge.device.latency_table`).

A piece's input and output are int8 tensors, so its file holds no QUANTIZE op: the whole model has those once
(at the uint8 pixels and scores), and they are part of what the whole model's measurement adds to the sum.
Weights are random where the width differs from the model's (the int8 kernels' time does not depend on the
values); the ones whose shape is unchanged (preprocessing, full-width layers) are the model's own.

The kit names the model it was cut from by structure (:func:`fingerprint`): layer names, widths, input shape
and head. A table is only used for a model with the same fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vggedge.auto.rules import LEVELS, check_searchable
from vggedge.backend.keras_env import keras, tf
from vggedge.core.atomic import write_text
from vggedge.core.errors import UserError
from vggedge.core.quantization import Quantization
from vggedge.device.latency_table import KIT_SCHEMA, entry_key, head_segment
from vggedge.export.convert import convert
from vggedge.models.anatomy import Anatomy, chain_layers, find_anatomy, fingerprint
from vggedge.steps.filters import _copy_layer, kept_count, thin_counts

CALIBRATION_SAMPLES = 4  # activation ranges do not change an int8 kernel's time: a few random inputs suffice


def head_variants(anatomy: Anatomy) -> list[str]:
    """The heads the search can give the model: its own, and GAP when it has a flatten or hidden dense layers."""
    return ["kept", "gap"] if anatomy.head_kind == "flatten" or anatomy.hidden else ["kept"]


def parse_keep(text: str) -> list[int]:
    """``"1,1/2,1/4"`` (kept fractions) as indices into the search's levels; full width always included."""
    from fractions import Fraction

    kept = {1 - float(level) for level in LEVELS}
    chosen = {0}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = float(Fraction(part))
        except (ValueError, ZeroDivisionError):
            raise UserError(f"--keep takes fractions separated by commas (e.g. 1,3/4,1/2), not {part!r}") from None
        match = next((i for i, level in enumerate(LEVELS) if abs((1 - level) - value) < 1e-9), None)
        if match is None:
            levels = ", ".join(f"{Fraction(k).limit_denominator(8)}" for k in sorted(kept, reverse=True))
            raise UserError(f"--keep {part}: the search's levels keep {levels}")
        chosen.add(match)
    return sorted(chosen)


@dataclasses.dataclass
class Pieces:
    """The model's chain cut where the kit cuts it: before the first conv, each conv with what follows it up to
    the next conv, and the head (from its pooling or flatten to the output)."""

    prefix: list[keras.layers.Layer]
    convs: list[tuple[int, list[keras.layers.Layer]]]  # (0-based block, the conv and what follows it)
    head: list[keras.layers.Layer]

    @classmethod
    def of(cls, model: keras.Model, anatomy: Anatomy) -> Pieces:
        block_of = {name: b for b, block in enumerate(anatomy.blocks) for name in block}
        prefix: list = []
        convs: list[tuple[int, list]] = []
        head: list = []
        for layer in chain_layers(model):
            if layer.name == anatomy.head_pool or head:
                head.append(layer)
            elif layer.name in block_of:
                convs.append((block_of[layer.name], [layer]))
            elif convs:
                convs[-1][1].append(layer)
            else:
                prefix.append(layer)
        return cls(prefix, convs, head)


def build_chain(
    layers: Sequence[keras.layers.Layer], input_shape: Sequence[int], widths: dict[str, int], name: str
) -> keras.Model:
    """Fresh copies of ``layers`` on an input of ``input_shape``, each conv at its width in ``widths``; the source's
    weights where their shapes still fit, the initializers' elsewhere."""
    inputs = keras.Input(tuple(int(d) for d in input_shape))
    x = inputs
    for layer in layers:
        conv = isinstance(layer, keras.layers.Conv2D)
        new = _copy_layer(layer, filters=widths[layer.name]) if conv and layer.name in widths else _copy_layer(layer)
        x = new(x)
        source = layer.get_weights()
        if source and [w.shape for w in source] == [tuple(w.shape) for w in new.weights]:
            new.set_weights(source)
    return keras.Model(inputs, x, name=name)


def gap_head(anatomy: Anatomy, channels_shape: Sequence[int]) -> keras.Model:
    """What the head step puts in: global average pooling and one dense output layer."""
    inputs = keras.Input(tuple(int(d) for d in channels_shape))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(anatomy.units, activation=anatomy.activation)(x), name="head_gap")


class KitBuilder:
    """Builds the kit's Keras pieces for one model (see the module docstring)."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.anatomy = find_anatomy(model)
        check_searchable(self.anatomy)
        self.pieces = Pieces.of(model, self.anatomy)
        self.full = {name: int(model.get_layer(name).filters) for name in self.anatomy.convs}
        self.image_channels = int(model.input_shape[-1])

    def widths(self, levels: Sequence[int]) -> dict[str, int]:
        """Each conv's filters when block b keeps ``LEVELS[levels[b]]`` (as the search's cuts round them)."""
        return {
            name: kept_count(self.full[name], LEVELS[levels[b]])
            for b, block in enumerate(self.anatomy.blocks)
            for name in block
        }

    def conv_piece(self, index: int, in_level: int | None, out_level: int) -> keras.Model:
        block, layers = self.pieces.convs[index]
        conv = layers[0]
        if index == 0:
            channels = int(conv.input_shape[-1])
        else:
            previous = self.pieces.convs[index - 1][1][0].name
            channels = kept_count(self.full[previous], LEVELS[in_level])
        shape = [*conv.input_shape[1:3], channels]
        width = {conv.name: kept_count(self.full[conv.name], LEVELS[out_level])}
        return build_chain(layers, shape, width, name=f"piece_{conv.name}")

    def head_piece(self, head: str, level: int) -> keras.Model:
        pool = self.pieces.head[0]
        last = self.anatomy.blocks[-1][-1]
        shape = [*pool.input_shape[1:3], kept_count(self.full[last], LEVELS[level])]
        if head == "gap":
            return gap_head(self.anatomy, shape)
        return build_chain(self.pieces.head, shape, {}, name="head_kept")

    def whole(self, levels: Sequence[int], head: str) -> keras.Model:
        """The whole model at a shape, from the same pieces (the prefix's preprocessing included)."""
        body = [*self.pieces.prefix, *(layer for _, layers in self.pieces.convs for layer in layers)]
        shape, widths = self.model.input_shape[1:], self.widths(levels)
        if head == "kept":
            return build_chain([*body, *self.pieces.head], shape, widths, name="whole_kept")
        features = build_chain(body, shape, widths, name="features")
        return keras.Model(features.input, self.head_piece("gap", levels[-1])(features.output), name="whole_gap")

    def entries(self, levels: Sequence[int]) -> list[tuple[str, int | None, int | None, Callable[[], keras.Model]]]:
        """(segment, input level, output level, builder) for every piece the search's shapes over ``levels`` use."""
        found = []
        for index, (block, layers) in enumerate(self.pieces.convs):
            name = layers[0].name
            first_in_block = index == 0 or self.pieces.convs[index - 1][0] != block
            for out_level in levels:
                if index == 0:
                    inputs: list[int | None] = [None]
                elif first_in_block:
                    inputs = list(levels)
                else:
                    inputs = [out_level]
                for in_level in inputs:
                    found.append((name, in_level, out_level, _bind(self.conv_piece, index, in_level, out_level)))
        for head in head_variants(self.anatomy):
            for level in levels:
                found.append((head_segment(head), level, None, _bind(self.head_piece, head, level)))
        return found


def _bind(function: Callable, *args: object) -> Callable[[], keras.Model]:
    return lambda: function(*args)


def check_shapes(block_count: int, levels: Sequence[int], count: int = 3, seed: int = 0) -> list[list[int]]:
    """Mixed shapes the table is checked on (the calibration wholes are uniform): the levels cycled over the blocks,
    then seeded random ones, as the search's shapes mix levels."""
    if len(levels) < 2:
        return []
    rng = np.random.default_rng(seed)
    shapes = [[levels[(b + 1) % len(levels)] for b in range(block_count)]]
    for _ in range(100 * count):
        if len(shapes) >= count:
            break
        shape = [int(level) for level in rng.choice(levels, block_count)]
        if len(set(shape)) > 1 and shape not in shapes:
            shapes.append(shape)
    return shapes


def piece_flatbuffer(model: keras.Model, rng: np.random.Generator) -> bytes:
    """A piece in int8 with int8 input and output (no QUANTIZE op of its own)."""
    samples = rng.uniform(0, 1, (CALIBRATION_SAMPLES, *model.input_shape[1:])).astype(np.float32)
    return convert(model, Quantization.INT8, samples, io_type=tf.int8)


def build_kit(
    model: keras.Model,
    out: Path,
    levels: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> dict:
    """Write the kit for ``model`` to ``out`` (``kit.json`` and the files it lists); returns the manifest."""
    from importlib.metadata import version

    levels = sorted(set(levels if levels is not None else range(len(LEVELS))) | {0})
    builder = KitBuilder(model)
    anatomy = builder.anatomy
    out = Path(out)
    (out / "pieces").mkdir(parents=True, exist_ok=True)
    (out / "wholes").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = builder.entries(levels)
    heads = head_variants(anatomy)
    # Uniform shapes (every block at one level) under each head set the residual; mixed ones under the head the
    # search ends with on such a model (GAP when it can swap one in) check it.
    wholes = [([level] * len(anatomy.blocks), head, "calibration") for head in heads for level in levels]
    wholes += [(shape, heads[-1], "check") for shape in check_shapes(len(anatomy.blocks), levels)]
    total = len(entries) + len(wholes)
    listed = []
    for done, (segment, in_level, out_level, build) in enumerate(entries, start=1):
        name = f"pieces/{segment}-i{_level_tag(in_level)}-o{_level_tag(out_level)}.tflite"
        piece = build()
        (out / name).write_bytes(piece_flatbuffer(piece, rng))
        weights = thin_counts(piece, {})[1]  # conv and dense kernel weights: the residual's axis
        listed.append(
            {"file": name, "segment": segment, "in_level": in_level, "out_level": out_level, "weights": weights}
        )
        if progress:
            progress(done, total)
    whole_list = []
    for done, (shape, head, role) in enumerate(wholes, start=len(entries) + 1):
        name = f"wholes/{head}-" + "-".join(str(level) for level in shape) + ".tflite"
        pixels = rng.uniform(0, 255, (CALIBRATION_SAMPLES, *model.input_shape[1:])).astype(np.float32)
        (out / name).write_bytes(convert(builder.whole(shape, head), Quantization.INT8, pixels))
        whole_list.append({"file": name, "levels": shape, "head": head, "role": role})
        if progress:
            progress(done, total)
    manifest = {
        "schema": KIT_SCHEMA,
        "model": fingerprint(model, anatomy),
        "source": model.name,
        "quantization": Quantization.INT8.value,
        "levels_removed": list(LEVELS),
        "levels": levels,
        "heads": heads,
        "entries": listed,
        "wholes": whole_list,
        "made_with": {"vggedge": version("vggedge"), "tensorflow": tf.__version__},
    }
    # Keys must be unique: two pieces of one segment at the same levels would make the table ambiguous.
    assert len({entry_key(e["segment"], e["in_level"], e["out_level"]) for e in listed}) == len(listed)
    write_text(out / "kit.json", json.dumps(manifest, indent=1))
    return manifest


def _level_tag(level: int | None) -> str:
    return "x" if level is None else str(level)
