"""The search's two near-tie rules, without a model: how many images rank candidates, and when the GAP head stays."""

from __future__ import annotations

import numpy as np
import pytest

from vggedge.auto.rules import GAP_TIE_SPEED, SEARCH_IMAGE_SHARE, SearchOptions, resolution_note, search_split_size
from vggedge.auto.searcher import Searcher
from vggedge.auto.trace import Candidate


@pytest.mark.parametrize(
    ("max_drop", "train", "expected"),
    [
        (1.0, 1404, 400),  # the sample: one image is a quarter of the point
        (0.5, 4000, 800),
        (0.5, 1000, 500),  # at most half the training images: the refits train on the rest
        (2.0, 1404, 200),  # a coarse budget: the floor
        (1.0, 300, 150),  # few images: never more than half, and the run says the split cannot resolve the budget
        (1.0, 140, 70),  # 360 images in all: the default runs (it refused before)
    ],
)
def test_the_default_search_split_resolves_a_quarter_of_the_budget(max_drop, train, expected):
    size = search_split_size(SearchOptions(max_drop_pts=max_drop), train)
    assert size == expected
    assert size <= train // 2
    if size not in (200, train // 2):
        assert 100 / size <= SEARCH_IMAGE_SHARE * max_drop


def test_a_split_that_cannot_resolve_the_budget_is_said_with_what_would():
    assert resolution_note(400, 1.0, carved=True) is None  # 0.25 point an image
    note = resolution_note(70, 1.0, carved=True)
    assert "one image at 1.43 points" in note and "About 200 search images" in note and "--search-data" in note
    assert resolution_note(200, 1.0, carved=False) is None


def test_an_explicit_search_split_size_is_kept():
    assert search_split_size(SearchOptions(max_drop_pts=1.0, search_images=120), 1404) == 120


def _start(head: str, speedup: float | None, size: int, latency: float = 1.0) -> Candidate:
    return Candidate(0, None, [0.0] * 5, head, "int8", latency, size, 1, 1, 0.9, 0.0, speedup=speedup)


@pytest.mark.parametrize(
    ("goal", "speedup", "kept"),
    [
        ("latency", 1.02, True),
        ("latency", 0.97, True),  # measured 0.96-0.99x on the held-out forms: a tie, the smaller file wins
        ("latency", GAP_TIE_SPEED, True),
        ("latency", GAP_TIE_SPEED - 0.01, False),  # slower beyond the timing's resolution
        ("size", 0.5, True),  # by size, the smaller file whatever its speed
    ],
)
def test_the_gap_head_stays_unless_measured_clearly_slower(goal, speedup, kept):
    searcher = Searcher.__new__(Searcher)
    searcher.options = SearchOptions(goal=goal)
    gap, dense = _start("gap", speedup, 1_000), _start("kept", None, 7_000)
    assert searcher.keeps_gap(gap, dense) is kept


def test_the_search_spends_calibration_and_refit_images_where_they_cost_little():
    """Full-size inputs: 16 calibration images per candidate and as many refit images as fill the solves at the
    smallest grid (103 at 224 px); small inputs keep the run's full sets (256 refit images at 32 px)."""
    from vggedge.auto.rules import search_calibration_count
    from vggedge.models.vgg import VGGSpec, build_vgg16
    from vggedge.steps.reconstruct import refit_image_count

    assert search_calibration_count(224, 100) == 16 and search_calibration_count(32, 100) == 100
    assert search_calibration_count(224, 10) == 10
    small = build_vgg16(VGGSpec(input_size=32, classes=10, width=1 / 8, dense_units=16, preprocess="unit"))
    large = build_vgg16(VGGSpec(input_size=224, classes=2, width=1 / 16, dense_units=16, preprocess="unit"))
    assert refit_image_count(small) == 256 and refit_image_count(large) == 103


def test_an_iterations_trials_that_cannot_step_let_go_of_their_models_as_soon_as_they_are_measured():
    """Only what may still become the next current model keeps its model and file: a screened trial within the bar
    (it may be converted) and the best measured step; the rest are released at once (at 224 pixels each is
    0.3-0.55 GB of weights and a 0.13 GB int8 file)."""
    from types import SimpleNamespace

    from vggedge.auto.trace import Shape

    def trial(top1: float, drop: float, speedup: float | None, screened: bool = False) -> Shape:
        candidate = Candidate(1, 1, [0.0] * 5, "kept", "int8", 1.0, 10, 1, 1, top1, drop, speedup=speedup)
        candidate.screened = screened
        return Shape(candidate, object(), {}, None if screened else b"tflite", [0] * 5)

    searcher = SimpleNamespace(options=SearchOptions(max_drop_pts=1.0))
    searcher.improves = lambda candidate, current: Searcher.improves(searcher, candidate, current)
    searcher.next_step = lambda trials, current, bar: Searcher.next_step(searcher, trials, current, bar)
    current = trial(0.9, 0.0, None)
    over_bar, slower = trial(0.8, 10.0, 1.5), trial(0.9, 0.0, 0.9)
    good, better = trial(0.9, 0.5, 1.2), trial(0.95, 0.0, 1.1)
    screened_in, screened_out = trial(0.9, 0.5, None, screened=True), trial(0.5, 30.0, None, screened=True)
    trials = [over_bar, slower, good, screened_in, screened_out]
    Searcher.release_losers(searcher, trials, current, 1.0)
    assert [t.model is not None for t in trials] == [False, False, True, True, False]
    assert good.timed and over_bar.timed is None
    trials.append(better)  # a better step: the one before it can no longer be picked
    Searcher.release_losers(searcher, trials, current, 1.0)
    assert [t.model is not None for t in trials] == [False, False, False, True, False, True]


def test_a_validation_after_the_first_starts_only_when_the_time_left_covers_the_last_one(monkeypatch):
    """Each validation fine-tunes the shape (1.5-2 minutes at 224 pixels): one started with seconds left overran a
    10-minute search by 108 s. On a clock where each takes 30 s and 100 s are left: three run, not four."""
    from types import SimpleNamespace

    import vggedge.auto.validation as validation
    from vggedge.auto.trace import Shape

    clock = [0.0]
    monkeypatch.setattr(validation.time, "perf_counter", lambda: clock[0])
    started = []

    def validated(proposal: Candidate, against: bytes) -> Shape:
        started.append(clock[0])
        clock[0] += 30.0
        proposal.passed = True
        return Shape(proposal, object(), {}, b"", [0] * 5)

    searcher = SimpleNamespace(deadline=100.0, validated=validated, out_of_time=lambda: clock[0] > 100.0)
    proposed = [_start("kept", None, 10) for _ in range(15)]
    start = Shape(_start("kept", None, 10), object(), {}, b"", [0] * 5)
    chosen, returned = validation.Validation.validate(searcher, start, proposed)
    assert started == [0.0, 30.0, 60.0]  # at 90 s, 10 s were left for a 30-second validation
    assert "time was up before the bisection ended" in returned and chosen.candidate.passed


def test_a_second_look_on_images_the_baseline_remembers_is_named_only_when_the_gap_is_beyond_chance():
    """With --search-data, the calibration split the validations look at a second time is carved from the training
    folder: a baseline right on 85 of its 100 images and on 64.47% of 76 search images (the real-photo benchmark's
    figures' kind) remembers them, and the report says that look can only refuse. 70 of 100 is within two standard
    errors of the difference (6.6 points), and without --search-data or labels there is nothing to compare."""
    from types import SimpleNamespace

    from vggedge.run.auto_run import memorized_second_look

    auto = SimpleNamespace(search_data="search/", max_drop_pts=3.0)
    labels = np.zeros(100, np.int64)
    remembered = np.arange(100) < 85
    note = memorized_second_look(remembered, labels, 0.6447, 76, auto)
    assert note is not None and "85.00% on the 100 calibration images" in note and "64.47%" in note, note
    assert memorized_second_look(np.arange(100) < 70, labels, 0.6447, 76, auto) is None
    assert memorized_second_look(remembered, None, 0.6447, 76, auto) is None  # no labels: agreement, not accuracy
    assert (
        memorized_second_look(remembered, labels, 0.6447, 76, SimpleNamespace(search_data=None, max_drop_pts=3.0))
        is None
    )
    assert (
        memorized_second_look(remembered, labels, 0.6447, 76, SimpleNamespace(search_data="s/", max_drop_pts=25.0))
        is None
    )
