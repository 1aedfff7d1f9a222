"""Ctrl-C in the middle of a fine-tune leaves nothing half-written: no model, report or scratch folder."""

from __future__ import annotations

import pytest

from helpers import files_under

pytestmark = pytest.mark.slow


def test_ctrl_c_during_a_fine_tune_leaves_nothing_behind(tiny_h5, digits_dir, tmp_path, monkeypatch):
    from vggedge.backend.keras_env import keras
    from vggedge.recipe.schema import load_recipe
    from vggedge.run.baseline import prepare
    from vggedge.run.options import OptimizeOptions
    from vggedge.run.recipe_run import run_recipe
    from vggedge.steps import prune

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None) -> None:  # noqa: ANN001
            if batch == 3:  # a few optimizer steps in, as a person would press it
                raise KeyboardInterrupt

    real_fit = prune.fit
    monkeypatch.setattr(prune, "fit", lambda *a, **k: real_fit(*a, **{**k, "callbacks": [*k["callbacks"], CtrlC()]}))
    out = tmp_path / "out"
    options = OptimizeOptions(
        model=str(tiny_h5), data=digits_dir, out=out, eval_samples=100, runs=1, warmup=0, progress=False
    )
    prepared = prepare(options, [load_recipe("prune")])
    with pytest.raises(KeyboardInterrupt):
        run_recipe(prepared.recipes[0], prepared, options)
    assert files_under(out) == []  # no model, no report, no scratch SavedModel
