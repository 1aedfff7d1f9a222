"""Model anatomy: find a VGG-style classifier's parts by structure, whatever its layers are called.

Users build VGG16 many ways: Keras Applications' names (``block3_conv2``, ``fc1``), a ``Sequential``
clone with auto names (``conv2d_7``, ``dense_1``), a functional builder ending in global average
pooling and dense layers, a frozen VGG16 base nested inside a transfer-learning model. Recipes must
not depend on any of that, so every step addresses layers through this anatomy:

    pixels -> [preprocessing: Rescaling / Normalization] -> block 1 .. block N (Conv2D..., pooling)
           -> head: Flatten | GlobalAveragePooling2D | GlobalMaxPooling2D -> hidden Dense... -> output Dense

Blocks are the runs of convolutions between pooling layers (VGG16: 2, 2, 3, 3, 3 convolutions);
Dropout, BatchNormalization and activation layers may sit anywhere. The model must be a chain
(nested sub-models are flattened when a file is loaded, see :func:`flatten_chain`); anything else
(branches, skip connections, recurrent layers) is not VGG-like and is refused in one line.

Recipe steps pick layers with selectors (``conv``, ``block2-5``, ``dense``, ``head``, ``all``,
``name:REGEX``; grammar in :mod:`vggedge.core.selectors`), resolved on the anatomy by :meth:`Anatomy.select`.
"""

from __future__ import annotations

import dataclasses

from vggedge.backend.keras_env import keras
from vggedge.core.errors import ModelError, UserError
from vggedge.core.selectors import SELECTOR_HELP, parse_selector
from vggedge.models.vgg import PREPROCESS_NAME, append_copies

PREPROCESSING_TYPES = (keras.layers.Rescaling, keras.layers.Normalization)
POOLING_TYPES = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
HEAD_POOLS = {
    keras.layers.Flatten: "flatten",
    keras.layers.GlobalAveragePooling2D: "gap",
    keras.layers.GlobalMaxPooling2D: "gmp",
}
# Layers that change neither the chain's shape in a way anatomy cares about nor its channels' meaning.
PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.Softmax,
    keras.layers.InputLayer,
)


class NotVGGLike(UserError):
    """The model is not a chain of conv blocks followed by a pooled/flattened dense head."""


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """Where each part of a VGG-style classifier is, by layer name (names are unique in a Keras model)."""

    name: str
    input_size: int
    preprocessing: tuple[str, ...]
    blocks: tuple[tuple[str, ...], ...]
    head_kind: str  # flatten | gap | gmp
    head_pool: str
    hidden: tuple[str, ...]
    output: str
    activation: str  # softmax | sigmoid | linear (or another Keras activation name)
    units: int

    @property
    def classes(self) -> int:
        """Classes the model tells apart (a 1-unit sigmoid output is two classes)."""
        return 2 if self.units == 1 else self.units

    @property
    def convs(self) -> tuple[str, ...]:
        return tuple(name for block in self.blocks for name in block)

    @property
    def is_vgg16(self) -> bool:
        """Exactly VGG16's conv layout: 2, 2, 3, 3, 3 convolutions in five blocks."""
        return tuple(len(block) for block in self.blocks) == (2, 2, 3, 3, 3)

    def select(self, selector: str) -> list[str]:
        """Layer names a ``layers`` selector picks, in model order; a UserError when it picks none."""
        chosen = self._resolve(selector)
        if not chosen:
            raise ModelError(
                f"layers={selector!r} selects no layer of {self.name!r} ({self.summary()}); "
                f"use one of {SELECTOR_HELP} (`vggedge inspect MODEL` shows the parts)"
            )
        return chosen

    def _resolve(self, text: str) -> list[str]:
        try:
            selector = parse_selector(text)
        except ValueError as error:
            raise ModelError(f"layers: {error}") from None
        if selector.kind == "conv":
            return list(self.convs)
        if selector.kind == "dense":
            return list(self.hidden)
        if selector.kind == "head":
            return [*self.hidden, self.output]
        if selector.kind == "all":
            return [*self.convs, *self.hidden, self.output]
        if selector.kind == "blocks":
            return [
                name
                for number, block in enumerate(self.blocks, start=1)
                if selector.first_block <= number <= selector.last_block
                for name in block
            ]
        return [name for name in (*self.convs, *self.hidden, self.output) if selector.pattern.fullmatch(name)]

    def summary(self) -> str:
        """One line: blocks, head and output, e.g. '5 blocks (2,2,3,3,3 convs), flatten head + 2 dense, softmax 10'."""
        convs = ",".join(str(len(block)) for block in self.blocks)
        return (
            f"{len(self.blocks)} blocks ({convs} convs), {self.head_kind} head + {len(self.hidden)} hidden dense, "
            f"{self.activation} output of {self.units}"
        )

    def describe(self) -> dict:
        """The report's ``model.anatomy`` section."""
        return {
            "preprocessing": list(self.preprocessing),
            "blocks": [list(block) for block in self.blocks],
            "head": {"kind": self.head_kind, "hidden": list(self.hidden), "output": self.output},
            "activation": self.activation,
            "classes": self.classes,
            "vgg16": self.is_vgg16,
        }


def _activation_name(layer: keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) or str(activation)


def chain_layers(model: keras.Model, nested: bool = False) -> list[keras.layers.Layer]:
    """The layers of a chain-shaped model in order (input layer excluded); NotVGGLike if it branches.

    ``nested``: allow sub-models as links of the chain (checked as chains themselves).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if isinstance(layer, keras.Model):
            if not nested:
                raise NotVGGLike(
                    f"model {model.name!r} nests {layer.name!r}: flatten it first (vggedge does so on load)"
                )
            chain_layers(layer, nested=True)
            continue
        nodes = getattr(layer, "_inbound_nodes", [])
        inbound = nodes[0].inbound_layers if nodes else []
        merges = isinstance(inbound, (list, tuple)) and len(inbound) > 1  # Add, Concatenate: a skip connection
        if merges or (len(nodes) > 1 and not nested):  # a layer applied twice
            raise NotVGGLike(
                f"model {model.name!r} is not VGG-like: layer {layer.name!r} ({type(layer).__name__}) joins or reuses "
                "branches; vggedge handles chains of conv blocks and a dense head"
            )
    return layers


def find_anatomy(model: keras.Model) -> Anatomy:
    """The anatomy of ``model``, or NotVGGLike with one line saying what does not fit."""
    layers = chain_layers(model)
    name = model.name

    def refuse(why: str) -> NotVGGLike:
        kinds = " -> ".join(type(layer).__name__ for layer in layers[:4]) + (" -> …" if len(layers) > 4 else "")
        return NotVGGLike(f"model {name!r} is not VGG-like ({kinds}): {why}")

    index = 0
    preprocessing: list[str] = []
    while index < len(layers) and (
        isinstance(layers[index], PREPROCESSING_TYPES) or layers[index].name == PREPROCESS_NAME
    ):
        preprocessing.append(layers[index].name)
        index += 1

    blocks: list[tuple[str, ...]] = []
    current: list[str] = []
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, keras.layers.Conv2D) and type(layer) is keras.layers.Conv2D:
            current.append(layer.name)
        elif isinstance(layer, POOLING_TYPES):
            if not current:
                raise refuse(f"pooling layer {layer.name!r} has no convolution before it")
            blocks.append(tuple(current))
            current = []
        elif isinstance(layer, tuple(HEAD_POOLS)):
            break
        elif not isinstance(layer, PASS_THROUGH):
            raise refuse(f"layer {layer.name!r} ({type(layer).__name__}) is not a convolution, pooling or head layer")
        index += 1
    if current:  # a last block without its own pooling (global pooling right after the convs)
        blocks.append(tuple(current))
    if not blocks:
        raise refuse("it has no convolution blocks")
    if index >= len(layers):
        raise refuse("it has no Flatten or global pooling layer before its dense head")
    head_pool = layers[index]
    dense = [layer for layer in layers[index + 1 :] if isinstance(layer, keras.layers.Dense)]
    others = [layer for layer in layers[index + 1 :] if not isinstance(layer, (keras.layers.Dense, *PASS_THROUGH))]
    if others:
        raise refuse(f"its head holds {others[0].name!r} ({type(others[0]).__name__}), not only Dense layers")
    if not dense:
        raise refuse("it has no Dense output layer")
    output = dense[-1]
    activation = _activation_name(output)
    trailing = [layer for layer in layers[layers.index(output) + 1 :] if not isinstance(layer, keras.layers.Dropout)]
    if trailing:
        last = trailing[-1]
        activation = "softmax" if isinstance(last, keras.layers.Softmax) else _activation_name(last)
    return Anatomy(
        name=name,
        input_size=int(model.input_shape[1]),
        preprocessing=tuple(preprocessing),
        blocks=tuple(blocks),
        head_kind=HEAD_POOLS[type(head_pool)],
        head_pool=head_pool.name,
        hidden=tuple(layer.name for layer in dense[:-1]),
        output=output.name,
        activation=activation,
        units=int(output.units),
    )


def flatten_chain(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with nested sub-models (e.g. a frozen VGG16 base) inlined, weights carried over.

    Steps need every layer addressable in one graph, and tfmot cannot wrap layers inside a nested
    model. A layer inside a frozen sub-model stays frozen. A model without nesting is returned as is.
    """
    if not any(isinstance(layer, keras.Model) for layer in model.layers):
        return model
    chain_layers(model, nested=True)
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    return keras.Model(inputs, append_copies(inputs, leaf_layers(model)), name=model.name)


def leaf_layers(container, trainable: bool = True) -> list:  # noqa: ANN001
    """(layer, trainable) for every non-model layer of ``container`` in order, nested models inlined; a layer
    inside a frozen sub-model counts as frozen. Duck-typed, so it walks Keras 3 models (translation) too."""
    found = []
    for layer in container.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if hasattr(layer, "layers") and kind in ("Functional", "Sequential", "Model"):
            found += leaf_layers(layer, trainable and layer.trainable)
        else:
            found.append((layer, trainable and layer.trainable))
    return found


def fingerprint(model: keras.Model, anatomy: Anatomy | None = None) -> dict:
    """The model's structure by name and width: what a latency table measured for one model must match to be used
    for another (``optimize --recipe auto --time-on TABLE.json``)."""
    anatomy = anatomy or find_anatomy(model)
    return {
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "blocks": [[[name, int(model.get_layer(name).filters)] for name in block] for block in anatomy.blocks],
        "head": anatomy.head_kind,
        "hidden": [[name, int(model.get_layer(name).units)] for name in anatomy.hidden],
        "output": [anatomy.output, anatomy.units, anatomy.activation],
    }
