"""Where the search's refits and float screens start: the current model's activations at each block's input."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.fixture(scope="module")
def loaded_forms(tmp_path_factory) -> dict:  # noqa: ANN001
    """Each user-built form (tests/forms.py), untrained, saved as .keras and loaded as vggedge loads it."""
    from forms import FORMS
    from vggedge.models.loading import load_model_file

    folder = tmp_path_factory.mktemp("forms")
    loaded = {}
    for name, (builder, _, preprocess) in FORMS.items():
        builder().save(folder / f"{name}.keras")
        loaded[name] = load_model_file(folder / f"{name}.keras", preprocess).model
    return loaded


@pytest.mark.parametrize("form", ["sequential_autonamed", "gap_dense_functional", "nested_frozen", "batch_norm"])
def test_on_every_form_a_refit_from_the_cut_block_equals_the_whole_refit(loaded_forms, form):
    """The search's refit shortcut (start at the cut block, from the current model's held activations) on each model
    form users build (auto names, a GAP head, a nested frozen base, batch normalization): the same weights as
    refitting every changed layer from the pixels, for a second cut after and before the first."""
    from vggedge.auto.block_inputs import BlockInputs
    from vggedge.steps.reconstruct import reconstruct, starting_targets

    model = loaded_forms[form]
    blocks = find_anatomy(model).blocks
    size = model.input_shape[1]
    images = np.random.default_rng(0).integers(0, 256, (48, size, size, 3)).astype(np.uint8)
    targets = starting_targets(model, images)
    held = BlockInputs(images, [block[0] for block in blocks])
    for first, then in ((1, 3), (3, 0)):
        kept: dict = {}
        current, _ = thin_model(model, 0.5, blocks[first], kept=kept)
        reconstruct(model, current, kept, images, targets=targets)
        weights = []
        for start in (held.start(current, then), None):
            relative: dict = {}
            thin, _ = thin_model(current, 0.5, blocks[then], kept=relative)
            composed = {**kept, **{name: kept[name][i] if name in kept else i for name, i in relative.items()}}
            reconstruct(model, thin, composed, images, targets=targets, start=start)
            weights.append(thin.get_weights())
        for ours, theirs in zip(*weights, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * max(1e-6, float(np.abs(theirs).max())))
