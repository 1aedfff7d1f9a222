"""Where each candidate's refit starts: the current model's input to the block it cuts, on the refit images.

Every candidate of an iteration is cut from the same current model, one block each, and the layers before the cut
block are that model's, refitted already (:class:`vggedge.steps.reconstruct.Start`). So their activations are
computed once per current model, block after block, and kept while it stays current, within
:data:`HELD_BYTES`: a block-5 cut of a 224-pixel VGG16 then refits from block 5's input instead of running
blocks 1-4 again, in both models, per refitted layer.
"""

from __future__ import annotations

import numpy as np

from vggedge.backend.keras_env import keras
from vggedge.steps.reconstruct import Start, image_chunks, inputs_to

# Activations kept for the current model (a 224-pixel VGG16 at full width, 103 images: block 2's input 0.33 GB,
# blocks 2-5 together 0.62 GB); a block's input beyond it is computed when asked and not kept.
HELD_BYTES = 800_000_000


class BlockInputs:
    """The current model's input to each block's first conv layer (``first_layers``) on ``images``, per chunk."""

    def __init__(self, images: np.ndarray, first_layers: list[str]) -> None:
        self.pixels = image_chunks(images)
        self.first_layers = first_layers
        self.model: keras.Model | None = None
        self.held: dict[int, list[np.ndarray]] = {}

    def start(self, model: keras.Model, block: int) -> Start:
        """Where a cut of ``block`` (0-based) of ``model`` starts its refit."""
        if model is not self.model:  # a new current model: what was held is another model's
            self.model, self.held = model, {}
        if block not in self.held:
            below = [b for b in self.held if b < block]
            origin = max(below) if below else None
            chunks = self.pixels if origin is None else self.held[origin]
            first = None if origin is None else self.first_layers[origin]
            inputs = inputs_to(model, self.first_layers[block], chunks, first=first)
            if _bytes(self.held) + _bytes({block: inputs}) > HELD_BYTES:
                return Start(self.first_layers[block], inputs)
            self.held[block] = inputs
        return Start(self.first_layers[block], self.held[block])

    def release(self) -> None:
        """Drop what is held (the descents are over)."""
        self.model, self.held = None, {}


def _bytes(held: dict[int, list[np.ndarray]]) -> int:
    return sum(chunk.nbytes for chunks in held.values() for chunk in chunks)
