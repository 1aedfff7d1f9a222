"""Validating the descent's path: each proposed shape built as the found recipe builds it (from the baseline, its own
fine-tunes), then judged by the one-standard-error rule (:func:`vggedge.auto.rules.drop_bound`); and the final
quantization, where another mode is measured faster than int8 on this target."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from vggedge.auto.rules import (
    ALTERNATIVE_QUANTIZATIONS,
    FINAL_QUANTIZATION_MARGIN,
    LEVELS,
    drop_bound,
    recipe_for,
    validation_passes,
)
from vggedge.auto.timing import TableTimer, Timed
from vggedge.auto.trace import Candidate, Shape
from vggedge.backend.keras_env import keras
from vggedge.core.formats import TFLITE
from vggedge.core.metrics import top1_classes
from vggedge.core.quantization import Quantization
from vggedge.device.models import load
from vggedge.recipe.schema import HeadStep, Recipe
from vggedge.steps import StepStopped, apply_steps
from vggedge.steps.shared import Reused, prefix_key


class SharedHead:
    """The validations' common first step: every validated shape's recipe with the GAP head begins with the same head
    step on the same baseline (:func:`~vggedge.auto.rules.recipe_for`), so it is trained once and handed to the
    validations after the first (:func:`~vggedge.steps.apply_steps`' ``shared``, as
    :class:`~vggedge.steps.shared.SharedSteps` does for the recipes of one run; the step's seed is the same)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.model: keras.Model | None = None
        self.records: list[dict] = []

    def reuse(self, recipe: Recipe) -> Reused | None:
        if self.model is None or prefix_key(recipe, 1) != self.key:
            return None
        return Reused(1, self.model, copy.deepcopy(self.records))

    def offer(self, recipe: Recipe, length: int, model: keras.Model, records: list[dict]) -> None:
        if length == 1 and self.model is None and isinstance(recipe.steps[0], HeadStep):
            self.key, self.model, self.records = prefix_key(recipe, 1), model, copy.deepcopy(records[:1])

    def finished(self, recipe: Recipe) -> None:
        """Kept for the next validation: the search's last one lets the whole searcher go."""


class Validation:
    """The :class:`~vggedge.auto.searcher.Searcher`'s last stage, kept apart from its descent: bisection along the
    path, at least one validation, and the final quantization's side-by-side timing."""

    def validate(self, start: Shape, proposed: list[Candidate]) -> tuple[Shape, str]:
        """The fastest of the ``proposed`` shapes (the descents' path, each faster than the one before; the GAP head
        first when the search adopted it) that passes its validation: built as the found recipe builds it, its drop on
        the search split plus one standard error within the budget (:func:`drop_bound`). By bisection while time is
        left, and at least once: a search that ran out of time in its descent still returns a shape measured after
        the final recipe's own fine-tunes, never the refit's proxy. ``start`` when none passes: the baseline's widths,
        with its own head when the path begins with the GAP swap; a validation after the first starts only when the
        time left covers the last one's. Bisection assumes the accuracy after fine-tuning
        falls along the path, as it does on average. Returns the shape and which one it is, for the report."""
        low, high, chosen = 0, len(proposed), start  # index 0 is ``start``, index i is proposed[i - 1]
        returned = (
            "the starting shape: nothing proposed" if not proposed else "the starting shape: no validation passed"
        )
        asked, last_s = 0, 0.0
        # After the first, a validation starts only when the time left covers the one before it: at 224 pixels each
        # fine-tunes for 1.5-2 minutes, and one started with seconds left overran a 10-minute search by 108 s.
        while low < high and (asked == 0 or self.deadline - time.perf_counter() >= last_s):
            middle = (low + high + 1) // 2
            began = time.perf_counter()
            shape = self.validated(proposed[middle - 1], start.timed)
            asked, last_s = asked + 1, time.perf_counter() - began
            candidate = shape.candidate
            if candidate.passed:
                low, chosen = middle, shape
                candidate.kept = True
                returned = f"validated shape {middle} of {len(proposed)} along the path"
            else:
                high = middle - 1
        if low < high:
            returned += " (time was up before the bisection ended)"
        return chosen, returned

    def validated(self, proposal: Candidate, against: Timed | None) -> Shape:
        """``proposal``'s shape built as the final recipe builds it (from the baseline, its fine-tunes), on the
        training images outside the search split, then measured like a candidate (timed beside ``against``)."""
        started = time.perf_counter()
        recipe = recipe_for(proposal.block_ratios, proposal.head, self.options.quantization, self.options.max_drop_pts)
        recipe = recipe.with_max_epochs(self.options.max_epochs)  # as the found recipe will run
        levels = [LEVELS.index(ratio) for ratio in proposal.block_ratios]
        try:
            model, _ = apply_steps(
                recipe, self.baseline, self.final_context, self.final_context.seed, shared=self.shared_head
            )
        except StepStopped as error:  # the recipe's own checks stopped a step: this shape fails its validation
            return self.stopped_validation(proposal, str(error), started)
        self.stages_before = {"build": round(time.perf_counter() - started, 2)}
        candidate = self.measure(
            model, proposal.iteration, proposal.changed_block, levels, proposal.head, against, stage="validated"
        )
        began = time.perf_counter()
        held_apart = self.held_apart_drop(self.last_timed)
        candidate.stages["held-apart score"] = round(time.perf_counter() - began, 2)
        candidate.seconds = round(sum(candidate.stages.values()), 1)
        self.judge(candidate, held_apart)
        self.validations += 1
        self.on_candidate(candidate, proposal.figure(self.options.goal))
        return Shape(candidate, model, {}, self.last_timed, levels)

    def stopped_validation(self, proposal: Candidate, reason: str, started: float) -> Shape:
        """A validation whose recipe stopped at a step's check: failed, with the reason, nothing measured."""
        candidate = dataclasses.replace(
            proposal, stage="validated", passed=False, kept=False, stopped=reason[:300], drop_bound_pts=None
        )
        candidate.stages = {"build": round(time.perf_counter() - started, 2)}
        candidate.seconds = round(candidate.stages["build"], 1)
        self.candidates.append(candidate)
        self.validations += 1
        self.on_candidate(candidate, proposal.figure(self.options.goal))
        return Shape(candidate, None, {}, None, [LEVELS.index(ratio) for ratio in proposal.block_ratios])

    def judge(self, candidate: Candidate, held_apart: tuple[float, int] | None) -> None:
        """A validated shape's verdict (:func:`validation_passes`): its drop plus :data:`VALIDATION_STANDARD_ERRORS`
        standard errors within the budget on the search split (:func:`drop_bound`), or its drop within the budget on
        both the search split and the held-apart images (``held_apart``: that drop in points, and how many images)."""
        bound = drop_bound(candidate.lost, candidate.gained, len(self.search))
        candidate.drop_bound_pts = round(bound, 2) + 0.0
        held_drop = None
        if held_apart is not None:
            held_drop, candidate.held_apart_images = held_apart
            candidate.held_apart_drop_pts = round(held_drop, 2) + 0.0
        candidate.passed_by = validation_passes(candidate.drop_pts, bound, held_drop, self.options.max_drop_pts)
        candidate.passed = candidate.passed_by is not None

    def held_apart_drop(self, timed: Timed) -> tuple[float, int] | None:
        """The top-1 drop (points) of ``timed`` (a validated shape's files) against the baseline on the held-apart
        images (the calibration split: no step trains on it, the evaluation never sees it) and their count, or None."""
        held = self.judged_on
        if held is None or not len(held):
            return None
        if self.held_apart_right is None:  # the baseline's side, once per search
            scores = self.baseline.predict(held.images.astype(np.float32), batch_size=32, verbose=0)
            labels = self.judged_labels
            self.held_apart_reference = labels if labels is not None else top1_classes(scores)
            self.held_apart_right = top1_classes(scores) == self.held_apart_reference
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            deployed = load(timed.write(Path(folder)), threads=self.options.threads, runtime=self.runtime)
            answers = top1_classes(np.stack([deployed.predict_one(image) for image in held.images]))
        right = answers == self.held_apart_reference
        return 100.0 * float(np.mean(self.held_apart_right) - np.mean(right)), len(held)

    def final_quantization(
        self, current: Candidate, model: keras.Model, timed: Timed | None, levels: list[int], head: str
    ) -> Candidate:
        """The found shape in each other quantization the target might run faster (float16 weights, dynamic range),
        timed side by side with the search's: one measured faster by :data:`FINAL_QUANTIZATION_MARGIN` and within the
        budget replaces it (``--goal latency``; a full-int8 file is always the smallest, so ``--goal size`` keeps
        it). On AVX-512 VNNI or AMX int8 wins; on a CPU without fast int8 kernels a float16 or dynamic model may not."""
        if (
            self.options.goal != "latency"
            or self.options.quantization != Quantization.INT8
            or isinstance(self.timer, TableTimer)
            or self.timed_format is not TFLITE  # float16 and dynamic range are TFLite's forms
        ):
            return current  # a table times int8 pieces only
        iteration = max(c.iteration for c in self.candidates) + 1
        chosen = current
        for mode in ALTERNATIVE_QUANTIZATIONS:
            if self.out_of_time() and chosen is not current:
                break
            candidate = self.measure(model, iteration, None, levels, head, against=timed, quantization=mode)
            self.on_candidate(candidate, current.figure("latency"))
            # Each is timed against the int8 model, so speedups compare across them.
            to_beat = FINAL_QUANTIZATION_MARGIN if chosen is current else max(FINAL_QUANTIZATION_MARGIN, chosen.speedup)
            if candidate.drop_pts <= self.options.max_drop_pts and (candidate.speedup or 0.0) > to_beat:
                chosen = candidate
        # An alternative that replaces int8 is marked too; the int8 shape keeps its mark from its descent or its
        # validation (the baseline's own shape, returned when no validation passed, has none after a GAP start)
        if chosen is not current:
            chosen.kept = True
        return chosen
