"""A fine-tune that got worse at its end, never moved above its floor, or ended far under its input on held-apart
images stops its step with the figures; tfmot's schedules, whose loss rises on
purpose, are not held to it; report.md flags the same rule."""

from __future__ import annotations

import types

import numpy as np
import pytest

from vggedge import steps
from vggedge.core.convergence import flat, loss_floor, rose_at_end, stuck
from vggedge.recipe.schema import FilterPruneStep, HeadStep, PruneStep
from vggedge.steps import StepContext
from vggedge.steps.context import StepResult
from vggedge.steps.inference_check import FellShort

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


def test_a_flat_loss_is_stuck_above_its_floor_and_converged_at_it():
    assert stuck([0.5135] * 20, 0.0) == "0.5135 for all 20 epochs, 0.513 above the lowest it can reach (0)"
    assert stuck([0.62993, 0.62992, 0.62991], 0.6298) is None  # a distillation at the teacher's own entropy
    assert stuck([1.3, 0.9, 0.5], 0.0) is None  # it moved
    soft = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert loss_floor(soft, "categorical") == pytest.approx((np.log(2) + 0.3250829733914482) / 2)
    assert loss_floor(np.array([0.5, 0.5]), "binary") == pytest.approx(np.log(2))
    assert loss_floor(np.array([1, 0]), "labels") == 0.0


def labelled_context(digits, held_apart: bool = False) -> StepContext:  # noqa: ANN001
    """256 training digits with their labels; with ``held_apart``, the calibration digits for the step's check."""
    held = digits.calibration if held_apart else None
    return StepContext(
        digits.train.first(256),
        digits.train.labels[:256],
        progress=False,
        held_apart=held,
        held_apart_labels=held.labels if held is not None else None,
    )


def test_a_filter_prune_whose_loss_never_moves_stops_with_the_reason(tiny, digits):
    """A learning rate of zero in effect: three epochs at the same loss, far above the labels' floor of 0."""
    step = FilterPruneStep(ratio=0.5, epochs=3, learning_rate=1e-12)
    with pytest.raises(steps.FineTuneDiverged, match=r"loss stayed flat \(\d\.\d+ for all 3 epochs, .* above"):
        steps.apply_step(step, tiny[0], labelled_context(digits))


def test_a_filter_prune_far_under_its_input_on_held_apart_images_stops_with_the_figures(tiny, digits):
    """90% of the filters gone and one barely-moving epoch: the check's images say the model cannot recover."""
    step = FilterPruneStep(ratio=0.9, epochs=1, learning_rate=1e-9)
    with pytest.raises(FellShort, match=r"right on \d+% of \d+ held-apart images against \d+% for the model it"):
        steps.apply_step(step, tiny[0], labelled_context(digits, held_apart=True))


def test_a_healthy_filter_prune_passes_its_check_and_records_it(tiny, digits):
    outcome = steps.apply_step(FilterPruneStep(ratio=0.25, epochs=2), tiny[0], labelled_context(digits, True))
    check = outcome.record["inference_check"]
    assert check["input_agreement"] - check["inference_agreement"] <= 0.10
    assert outcome.record["loss_floor"] == 0.0  # labels: cross-entropy can reach 0


def test_a_fine_tune_that_only_hurts_a_refitted_cut_hands_on_the_refit(tiny, digits):
    """With a refit the starting weights are a candidate of the plateau watch (epoch 0): a learning rate that
    wrecks the model in its first epoch leaves every held-apart loss above the start's, so the refitted weights are
    handed on, exactly those a refit without fine-tune gives, and the record says so."""
    context = labelled_context(digits, held_apart=True)
    wrecked = steps.apply_step(FilterPruneStep(ratio=0.5, epochs=3, learning_rate=0.5, refit=True), tiny[0], context)
    record = wrecked.record
    assert record["best_epoch"] == 0 and record["held_apart_loss_before"] is not None
    # every epoch worse than the start; a loss that blew up to NaN (this learning rate does on AVX2 kernels) is None
    assert all(loss is None or loss > record["held_apart_loss_before"] for loss in record["held_apart_loss_per_epoch"])
    refit_only = steps.apply_step(FilterPruneStep(ratio=0.5, epochs=0, refit=True), tiny[0], context).model
    for ours, theirs in zip(wrecked.model.get_weights(), refit_only.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert record["inference_check"]["input_agreement"] - record["inference_check"]["inference_agreement"] <= 0.10


def test_a_head_distillation_never_goes_below_the_teachers_entropy(tiny, digits):
    """The floor the report compares a flat distillation loss with is the real one: no epoch is under it."""
    context = StepContext(digits.train.first(256), None, progress=False)
    record = steps.apply_step(HeadStep(train="distill", epochs=3), tiny[0], context).record
    teacher = tiny[0].predict(digits.train.images[:256], verbose=0)
    assert record["loss_floor"] == pytest.approx(loss_floor(teacher, "categorical"), abs=1e-4)
    assert record["loss_floor"] > 0
    assert min(record["loss_per_epoch"] + [record["start_loss"]]) >= record["loss_floor"] - 1e-3


def test_the_plateau_watch_stops_on_held_apart_loss_and_hands_on_the_best_epoch():
    """Held-apart targets that contradict the training ones: their loss rises from the first epoch, so training
    stops after ``patience`` epochs without improvement and the first epoch's weights are handed on."""
    from vggedge.backend.keras_env import keras
    from vggedge.backend.training import PlateauStop, fit

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    watch = PlateauStop(patience=2)
    weights_after: list = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights_after.append(model.get_weights()))
    losses = fit(model, x, y, 20, 32, "toy", progress=False, callbacks=[record, watch], validation=(x[:64], 1 - y[:64]))
    figures = watch.figures()
    assert figures["stopped_early"] and len(losses) < 20 and len(figures["held_apart_loss_per_epoch"]) == len(losses)
    best = figures["best_epoch"]
    assert figures["held_apart_loss_per_epoch"][best - 1] == min(figures["held_apart_loss_per_epoch"])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights_after[best - 1], strict=True))


def test_a_filter_prune_records_its_held_apart_curve_and_distils_when_asked(tiny, digits):
    context = labelled_context(digits, held_apart=True)
    record = steps.apply_step(FilterPruneStep(ratio=0.25, epochs=3, train="distill"), tiny[0], context).record
    assert record["targets"] == "distillation" and record["loss_floor"] > 0  # the teacher's soft targets
    assert 1 <= len(record["held_apart_loss_per_epoch"]) == len(record["loss_per_epoch"]) <= 3
    assert 1 <= record["best_epoch"] <= len(record["loss_per_epoch"])


def test_a_drop_within_the_noise_of_the_check_images_does_not_stop_the_step():
    """62% against 73% on 64 images of a weak model (12 lost, 5 gained) is within the noise; 50% against 67% with
    12 lost and 1 gained is not."""
    from vggedge.steps.inference_check import require_near_input

    noisy = {"images": 64, "against": "labels", "inference_agreement": 0.625, "input_agreement": 0.7344}
    require_near_input("head", {**noisy, "lost": 12, "gained": 5})
    far = {"images": 64, "against": "labels", "inference_agreement": 0.5, "input_agreement": 0.6719}
    with pytest.raises(FellShort, match=r"12 images lost, 1 gained, McNemar p = 0.0034"):
        require_near_input("filter-prune", {**far, "lost": 12, "gained": 1})
