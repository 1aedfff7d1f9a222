"""A fine-tune that got worse at its end stops its step with the figures; tfmot's schedules, whose loss rises on
purpose, are not held to it; report.md flags the same rule."""

from __future__ import annotations

import types

import pytest

from vggedge import steps
from vggedge.core.convergence import flat, rose_at_end
from vggedge.recipe.schema import FilterPruneStep, HeadStep, PruneStep
from vggedge.steps.context import StepResult

DIVERGED = [1.107, 0.766, 0.495, 0.425, 0.368, 0.869]  # a nested VGG19's filter-prune fine-tune (issue 40)


def test_the_rule_reads_the_loss_curve():
    assert rose_at_end(DIVERGED) == "lowest 0.368 at epoch 5, 0.869 at the last"
    assert rose_at_end([1.30, 0.9, 0.7, 0.55, 0.48]) is None  # still falling: not this rule's business
    assert rose_at_end([0.10, 0.06, 0.05, 0.07]) is None  # noise of a healthy one: +0.02
    assert rose_at_end([0.4, 0.9]) is None  # too short to say
    assert flat([0.5135] * 20) and not flat(DIVERGED)


def fake_context() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        seed=0, placement=types.SimpleNamespace(distributed=False), synthetic=True, held_apart=None, train=None
    )


@pytest.mark.parametrize(
    ("step", "stops"),
    [(FilterPruneStep(ratio=0.5), True), (HeadStep(), True), (PruneStep(sparsity=0.9), False)],
)
def test_a_step_whose_fine_tune_rose_at_the_end_stops_with_the_figures(monkeypatch, step, stops):
    model = object()
    fake = types.SimpleNamespace(apply=lambda s, m, c: StepResult(object(), {"loss_per_epoch": DIVERGED}))
    monkeypatch.setattr(steps, "implementation", lambda s: fake)
    monkeypatch.setattr(steps, "normalization_layers", lambda m: [])
    monkeypatch.setattr(steps.keras.utils, "set_random_seed", lambda seed: None)
    if stops:
        with pytest.raises(steps.FineTuneDiverged, match=r"loss rose at the end \(lowest 0.368 at epoch 5"):
            steps.apply_step(step, model, fake_context())
    else:
        assert steps.apply_step(step, model, fake_context()).record["loss_per_epoch"] == DIVERGED
