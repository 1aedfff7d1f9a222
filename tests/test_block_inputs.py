"""Where the search's refits and float screens start: the current model's activations at each block's input."""

from __future__ import annotations

import numpy as np

from vggedge.models.anatomy import find_anatomy
from vggedge.steps.filters import thin_model


def test_block_inputs_are_the_models_own_activations_held_per_current_model(tiny, digits, monkeypatch):
    """Computed block after block from the nearest held block, equal to a pass from the pixels; a new current model
    starts afresh; beyond the memory cap a block's input is computed and handed over but not held."""
    from vggedge.auto import block_inputs as module
    from vggedge.steps.reconstruct import inputs_to

    model, _ = tiny
    blocks = find_anatomy(model).blocks
    images = digits.train.images[:40]
    held = module.BlockInputs(images, [block[0] for block in blocks])
    pixels = [images[i : i + 16].astype(np.float32) for i in range(0, len(images), 16)]
    for block in (1, 3, 2):
        start = held.start(model, block)
        expected = inputs_to(model, blocks[block][0], pixels)
        assert start.layer == blocks[block][0]
        for ours, theirs in zip(start.chunks, expected, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert sorted(held.held) == [1, 2, 3]
    thin, _ = thin_model(model, 0.5, blocks[0])
    held.start(thin, 2)
    assert held.model is thin and sorted(held.held) == [2]
    assert held.start(thin, 2).chunks[0].shape[-1] == thin.get_layer(blocks[2][0]).input_shape[-1]
    monkeypatch.setattr(module, "HELD_BYTES", 0)
    start = held.start(thin, 4)
    assert start.chunks and 4 not in held.held
    held.release()
    assert held.model is None and not held.held
