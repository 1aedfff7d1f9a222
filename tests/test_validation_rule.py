"""`--recipe auto`'s validation rule, without a model: the bound (drop plus one standard error of the paired drop),
its verdict, and the bisection along the path with the real rule (a Searcher with nothing but what they read)."""

from __future__ import annotations

import dataclasses

import pytest

SEARCH_IMAGES = 400  # the default split at 1 point: one image is 0.25 points


def _fake_searcher(counts: list[tuple[int, int]], max_drop: float = 1.0):  # noqa: ANN202
    """A Searcher with nothing but what :meth:`Searcher.validate` reads, whose validation of proposal i answers at
    once with ``counts[i]`` = (images lost, images gained) against the baseline on 400 search images, judged by the
    real rule."""
    import time

    from vggedge.auto.rules import SearchOptions
    from vggedge.auto.searcher import Searcher
    from vggedge.auto.trace import Candidate, Shape

    def candidate(i: int) -> Candidate:
        return Candidate(i, 1, [0.125 * i] + [0.0] * 4, "gap", "int8", 1.0 / (i + 1), 1, 1, 1, 0.9, 0.0)

    searcher = Searcher.__new__(Searcher)
    searcher.options = SearchOptions(max_drop_pts=max_drop)
    searcher.search = [None] * SEARCH_IMAGES
    searcher.deadline = time.perf_counter() + 600
    searcher.asked = []

    def validated(proposal: Candidate, against: bytes) -> Shape:
        index = round(proposal.block_ratios[0] / 0.125) - 1
        searcher.asked.append(index)
        measured = candidate(index + 1)
        measured.lost, measured.gained = counts[index]
        measured.drop_pts, measured.stage = 100 * (measured.lost - measured.gained) / SEARCH_IMAGES, "validated"
        searcher.judge(measured, None)
        return Shape(measured, None, {}, b"", [])

    searcher.validated = validated
    start = Shape(candidate(0), None, {}, b"start", [])
    return searcher, start, [candidate(i + 1) for i in range(len(counts))]


@pytest.mark.parametrize(
    ("images", "lost", "gained", "bound"),
    [
        (400, 0, 0, 0.25),  # no disagreement on 400 images: passes up to -0.75 at 1 point, as the old fixed margin
        (100, 0, 0, 1.0),  # ... and on 100 only when it loses nothing
        (400, 4, 0, 1.50),  # -1.00 at the budget line: over it by one standard error
        (400, 6, 4, 1.29),  # -0.50 from ten disagreements fails ...
        (400, 2, 0, 0.85),  # ... -0.50 from two lost images passes
        (400, 3, 0, 1.18),  # ... -0.75 from three does not
        (291, 6, 5, 1.48),  # -0.34 on 291 images (a form's shape at this drop ended -1.67 on 300) from eleven fails
        (300, 0, 3, -0.43),  # a shape that gained on the baseline has room
        (400, 3, 1, 0.999),  # -0.50 from four: at the line, a pass (the sample's mild shapes after their fine-tunes)
    ],
)
def test_the_validation_bound_is_the_drop_plus_one_standard_error_of_the_paired_images(images, lost, gained, bound):
    from vggedge.auto.rules import drop_bound

    assert drop_bound(lost, gained, images) == pytest.approx(bound, abs=0.006)
    assert (drop_bound(lost, gained, images) <= 1.0) == (bound <= 1.0)  # the verdict at 1 point, exactly


@pytest.mark.parametrize(("images", "passed"), [(400, True), (398, False)])
def test_the_verdict_is_taken_on_the_exact_bound_not_the_rounded_one(images, passed):
    """3 lost and 1 gained: bound 0.9994 on 400 images, 1.0044 on 398; both read 1.00 in the report."""
    searcher, _, _ = _fake_searcher([])
    searcher.search = [None] * images
    from vggedge.auto.trace import Candidate

    candidate = Candidate(1, 1, [0.5] + [0.0] * 4, "gap", "int8", 1.0, 1, 1, 1, 0.99, 0.5, lost=3, gained=1)
    searcher.judge(candidate, None)
    assert candidate.passed is passed and candidate.drop_bound_pts == 1.0


@pytest.mark.parametrize(
    ("lost", "gained", "held_apart", "passed_by"),
    [
        # 72 search images at a 3-point budget (the real-photo run of issue 49): two lost images are -2.78, bound 4.72
        (2, 0, None, None),  # alone, the small split cannot pass it
        (2, 0, 1.0, "both"),  # a held-apart set that also puts it within the budget passes it
        (2, 0, 3.0, "both"),  # ... at the line, exactly
        (2, 0, 3.01, None),  # ... not past it
        (3, 0, 0.0, None),  # -4.17 on the search split: over the budget, whatever the held-apart images say
        (0, 0, 5.0, "bound"),  # no disagreement (bound 1.39): the search split's rule passes it on its own
    ],
)
def test_a_small_search_split_passes_a_shape_that_two_image_sets_put_within_the_budget(
    lost, gained, held_apart, passed_by
):
    from vggedge.auto.trace import Candidate
    from vggedge.core.candidate import PASSED_BY_BOTH, PASSED_BY_BOUND

    searcher, _, _ = _fake_searcher([], max_drop=3.0)
    searcher.search = [None] * 72
    drop = 100 * (lost - gained) / 72
    candidate = Candidate(1, 1, [0.5] + [0.0] * 4, "gap", "int8", 1.0, 1, 1, 1, 0.9, round(drop, 2), lost=lost)
    searcher.judge(candidate, None if held_apart is None else (held_apart, 100))
    expected = {"both": PASSED_BY_BOTH, "bound": PASSED_BY_BOUND, None: None}[passed_by]
    assert candidate.passed_by == expected and candidate.passed is (passed_by is not None)
    assert candidate.held_apart_drop_pts == held_apart and candidate.held_apart_images == (
        None if held_apart is None else 100
    )


def test_the_validation_bound_grows_with_the_disagreements_at_one_drop():
    from vggedge.auto.rules import drop_bound

    bounds = [drop_bound(2 + k, k, 400) for k in range(0, 40, 5)]  # all -0.50
    assert bounds == sorted(bounds) and bounds[-1] - bounds[0] > 1.0


@pytest.mark.parametrize(
    ("counts", "asked", "chosen"),
    [
        ([(1, 1), (2, 1), (2, 0), (8, 0), (16, 0)], [2, 3], 2),  # the middle passes, the one after it fails
        ([(0, 0), (0, 1), (1, 1), (1, 0), (2, 2)], [2, 3, 4], 4),  # every one passes: the fastest, in three
        # At the budget line is not a pass: 4 lost (-1.00) and 3 lost (-0.75, bound 1.18) fail, 1 lost passes.
        ([(1, 0), (3, 0), (4, 0), (10, 0), (16, 0)], [2, 0, 1], 0),
        ([(6, 0), (8, 0), (12, 0), (16, 0)], [1, 0], None),  # none passes: the starting shape, never a refit proxy
        ([], [], None),  # nothing proposed: no validation at all
    ],
)
def test_validation_bisects_the_path_to_the_fastest_shape_within_one_standard_error(counts, asked, chosen):
    searcher, start, proposed = _fake_searcher(counts)
    shape, returned = searcher.validate(start, proposed)
    assert searcher.asked == asked
    if chosen is None:
        assert shape is start and "starting shape" in returned
    else:
        assert shape.candidate.stage == "validated" and shape.candidate.kept and shape.candidate.passed
        assert shape.candidate.block_ratios == proposed[chosen].block_ratios
        assert f"validated shape {chosen + 1} of {len(proposed)}" in returned


def test_a_search_out_of_time_still_validates_once():
    """No time left after the descent: one validation anyway, so the returned shape was measured after the found
    recipe's own fine-tunes."""
    searcher, start, proposed = _fake_searcher([(0, 0), (1, 0), (2, 0), (9, 0)])
    searcher.deadline = 0.0
    shape, returned = searcher.validate(start, proposed)
    assert searcher.asked == [1] and shape.candidate.block_ratios == proposed[1].block_ratios
    assert "time was up" in returned


def test_a_search_that_returns_its_start_names_the_faster_shapes_it_measured_and_how_to_validate_them():
    """Issue 49: no validation passed, so the search returns the int8 start; the report still names the faster
    shapes the search measured within the budget (fastest first, one per shape, none past the budget or slower), and
    the command that gives their validations time and held-apart images."""
    import types

    from vggedge.auto.rules import SearchOptions
    from vggedge.auto.trace import SearchResult
    from vggedge.core.candidate import Candidate
    from vggedge.run.auto_run import unvalidated_note

    def shape(ratios, ms, drop, stage="search", head="gap"):  # noqa: ANN001, ANN202
        return Candidate(0, None, [ratios] * 5, head, "int8", ms, 1, 1, 1, 0.9, drop, stage=stage)

    start = shape(0.0, 40.0, 0.0, head="kept")
    measured = [
        start,
        shape(0.5, 5.6, 1.39),  # the fastest within a 3-point budget
        shape(0.5, 5.9, 1.39),  # the same shape timed again: named once
        shape(0.625, 4.0, 3.5),  # past the budget
        shape(0.25, 16.2, 0.0, stage="stretch"),
        shape(0.375, 12.0, 2.78, stage="validated"),  # a validation's figure is not the search's
        shape(0.125, 45.0, 0.0),  # slower than what was returned
        shape(0.0, 30.0, 0.0, head="kept"),  # the returned shape itself, timed again in another round
        shape(0.75, 3.0, 2.0),  # within the budget on the search split, but its validation ran and failed:
        dataclasses.replace(shape(0.75, 3.2, 3.9, stage="validated"), passed=False),  # more time would not help
    ]
    result = SearchResult(None, start, measured, 600.0, "time is up", 72, 100, 0.6, 0.2,
                          chosen="the starting shape: no validation passed", returned_start=True)  # fmt: skip
    options = SearchOptions(max_drop_pts=3.0, minutes=10.0)
    faster = result.faster_unvalidated(3.0)
    assert [(c.block_ratios[0], c.latency_ms) for c in faster] == [(0.5, 5.6), (0.25, 16.2)]
    section = result.describe("latency", options)["faster_unvalidated"]
    assert section[0]["times_faster"] == pytest.approx(40 / 5.6, abs=0.01)
    note = unvalidated_note(result, options, types.SimpleNamespace(model="m.keras", data="photos"))
    assert "blocks keep 0.5 0.5 0.5 0.5 0.5, head gap: 5.6 ms (7.14x faster, a drop of 1.39 pts" in note
    assert "vggedge optimize --recipe auto --model m.keras --data photos --max-drop 3 --search-minutes 20" in note
    assert "--search-data DIR" in note
    result.chosen, result.returned_start = "validated shape 2 of 3 along the path", False
    assert result.faster_unvalidated(3.0) == [] and unvalidated_note(result, options, None) is None


@pytest.mark.parametrize(
    ("total_s", "per_image_s", "reserved_s"),
    [
        # 600 s, 100 tune images at 10 ms a forward pass, 2 epochs: 100 x 0.01 x 7 + 2 + 1 = 10 s each, 30 s for three;
        # below a third of the time, so a third is kept (a descent that runs long still leaves time for one)
        (600.0, 0.01, 200.0),
        # at 0.1 s a pass (the 224-pixel VGG16 on 2 cores): 73 s each, 219 s for three: more than a third
        (600.0, 0.1, 219.0),
        # at 1 s a pass: 703 s each; at most two thirds are kept, and the plan says how many fit
        (600.0, 1.0, 400.0),
    ],
)
def test_the_validations_time_is_kept_before_the_descents_from_an_estimate_of_one(total_s, per_image_s, reserved_s):
    from vggedge.auto.rules import PLANNED_VALIDATIONS, validation_plan

    plan = validation_plan(total_s, per_image_s, tune_images=100, epochs=2, convert_s=2.0, score_s=1.0)
    assert plan.estimate_s == pytest.approx(100 * per_image_s * 7 + 3.0)
    assert plan.reserved_s == pytest.approx(reserved_s)
    described = plan.describe()
    assert described["planned_validations"] == PLANNED_VALIDATIONS
    assert described["fits"] == int(reserved_s // plan.estimate_s)
