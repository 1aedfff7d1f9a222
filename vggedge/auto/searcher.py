"""NetAdapt-style descent over a VGG's conv blocks (see :mod:`vggedge.auto`)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vggedge.auto.block_inputs import BlockInputs
from vggedge.auto.rules import (
    FINAL_FILTER_EPOCHS,
    GAP_TIE_SPEED,
    LEVELS,
    MIN_STEP,
    MIN_VALIDATION_SHARE,
    STRETCH_FACTOR,
    SearchOptions,
    ValidationPlan,
    check_searchable,
    recipe_for,
    search_calibration_count,
    search_source,
    validation_plan,
)
from vggedge.auto.screening import Screening
from vggedge.auto.timing import Timed, timer_for
from vggedge.auto.trace import Candidate, SearchResult, Shape, pareto_front
from vggedge.auto.validation import SharedHead, Validation
from vggedge.backend.keras_env import keras
from vggedge.core.data import FileSplit, Split
from vggedge.core.errors import UserError
from vggedge.core.formats import TFLITE, model_files, runtime_named
from vggedge.core.metrics import top1_classes
from vggedge.core.progress import Laps
from vggedge.core.quantization import Quantization
from vggedge.device.models import load
from vggedge.export.convert import convert
from vggedge.export.formats import write as write_format
from vggedge.models.anatomy import find_anatomy, fingerprint
from vggedge.models.flops import count_macs
from vggedge.steps import STOPS, StepContext, apply_step
from vggedge.steps.filters import kept_count, thin_counts, thin_model
from vggedge.steps.reconstruct import Targets, first_images, reconstruct, refit_image_count, starting_targets


class Searcher(Validation, Screening):
    """The NetAdapt-style loop over one baseline; :meth:`run` returns the best shape as a recipe."""

    def __init__(
        self,
        baseline: keras.Model,
        search: Split,
        tune: FileSplit | Split,
        calibration: np.ndarray,
        labels_match: bool,
        options: SearchOptions,
        context: StepContext,
        on_candidate: Callable[[Candidate, float], None] | None = None,
        judged_on: Split | None = None,
    ) -> None:
        self.baseline = baseline
        self.anatomy = find_anatomy(baseline)
        check_searchable(self.anatomy)
        self.search = search
        self.tune = tune
        self.calibration = calibration[: search_calibration_count(int(baseline.input_shape[1]), len(calibration))]
        self.options = options
        self.context = dataclasses.replace(context, train=tune, train_labels=None)  # distillation
        # The validations' fine-tunes: the final recipe's targets (labels when they index the outputs), without the
        # search split, whose top-1 decides.
        labels = tune.labels if context.train_labels is not None else None
        self.final_context = dataclasses.replace(context, train=tune, train_labels=labels)
        self.on_candidate = on_candidate or (lambda candidate, target: None)
        self.started = time.perf_counter()
        self.deadline = self.started + options.minutes * 60
        # The descents stop here at the latest, so the validations have time of their own: at least
        # MIN_VALIDATION_SHARE until the start is measured, then as planned (plan_validations)
        self.descents_deadline = self.started + options.minutes * 60 * (1 - MIN_VALIDATION_SHARE)
        self.plan: ValidationPlan | None = None
        self.descents_ended: float | None = None
        self.iteration = 0  # across the search and the stretch
        self.validations = 0
        # The held-apart images' references and the baseline's answers there (Validation.held_apart_drop), once
        self.held_apart_reference: np.ndarray | None = None
        self.held_apart_right: np.ndarray | None = None
        # ...which are the steps' held-apart images unless the run checks steps on others (--search-data: the
        # search split), when the calibration split stays the validations' second, independent look
        judged = context if judged_on is None else context.checked_on(judged_on, labels_match)
        self.judged_on, self.judged_labels = judged.held_apart, judged.held_apart_labels
        self.shared_head = SharedHead()  # the validations' GAP head step, trained once
        self.head = "kept"
        self.gap_stopped: str | None = None  # why the GAP start was not measured, when its step's check stopped it
        self.final_step = options.step
        self.candidates: list[Candidate] = []
        self.stages_before: dict[str, float] = {}  # seconds spent on the next measured shape before measure()
        self.step = options.step  # per descent: halved when no block can meet it, or no candidate stays within its bar
        self.failed: set[tuple[int, int]] = set()  # (block, level) that failed from the current model
        teacher, self.float_scoring_s = self.float_pass()  # its seconds: what screening a candidate costs at most
        self.screening, self.screening_record = False, None
        self.reference = search.labels if labels_match else top1_classes(teacher)
        self.baseline_right = top1_classes(teacher) == self.reference
        self.baseline_top1 = float(np.mean(self.baseline_right))
        self.full_widths = [[int(self.baseline.get_layer(n).filters) for n in block] for block in self.anatomy.blocks]
        self.tune_images = first_images(tune, refit_image_count(baseline))  # each candidate's refit's, decoded once
        self.targets: Targets | None = None  # the starting model's outputs the refits match (starting_targets)
        firsts = [block[0] for block in self.anatomy.blocks]
        self.block_inputs = BlockInputs(self.tune_images, firsts)  # where each refit starts
        self.search_inputs = BlockInputs(search.images, firsts)  # where each float screen starts
        # --runtime: the candidates are written, scored and timed in the format it runs (default: TFLite)
        self.runtime, self.timed_format = runtime_named(options.runtime) if options.runtime else (None, TFLITE)
        self.timer = timer_for(
            options.time_on,
            options.time_on_token,
            options.threads,
            options.runs,
            search.images[0],
            fingerprint(baseline, self.anatomy),
            options.quantization.value,
            self.runtime,
        )

    def trace_so_far(self) -> dict:
        """The candidates measured until now, for a search that did not finish (Ctrl-C): the report's ``search``
        section without a result, marked incomplete."""
        kept = [c for c in self.candidates if c.kept]
        return {
            "goal": self.options.goal,
            "max_drop_pts": self.options.max_drop_pts,
            "seconds": round(time.perf_counter() - self.started, 1),
            "stopped": "interrupted",
            "complete": False,
            "images": {"search": len(self.search), "reconstruction": len(self.tune_images)},
            "baseline_search_top1": round(self.baseline_top1, 4),
            "ranked_on": f"search split ({search_source(self.options)}; never the evaluation images)",
            "best_so_far": dataclasses.asdict(kept[-1]) if kept else None,
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
            "pareto": pareto_front(self.candidates, self.options.goal),
        }

    # ---- measuring one shape ----------------------------------------------------------------------
    def out_of_time(self, deadline: float | None = None) -> bool:
        return time.perf_counter() > (deadline or self.deadline)

    def measure(
        self,
        model: keras.Model,
        iteration: int,
        block: int | None,
        levels: list[int],
        head: str,
        against: bytes | None = None,
        quantization: Quantization | None = None,
        stage: str = "search",
    ) -> Candidate:
        """Convert (in ``quantization``, default the search's) to the format the timing runtime runs, score that file
        on the search split and time it; with ``against`` (the current model's files), time both side by side. The
        files are left in :attr:`last_timed`."""
        stages, self.stages_before = self.stages_before, {}  # what made this shape (the refit), then each stage here
        lap = Laps(stages)
        quantization = quantization or self.options.quantization
        calibration = self.calibration if quantization.calibrated else None
        timed = self.timed_files(model, quantization, calibration)
        self.last_timed = timed
        lap("convert")
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            deployed = load(timed.write(Path(folder)), threads=self.options.threads, runtime=self.runtime)
            scores = np.stack([deployed.predict_one(image) for image in self.search.images])
            lap("score")
            side_by_side = against if self.options.goal == "latency" else None
            timing = self.timer.time(deployed, timed, levels, head, side_by_side)
            lap("time")
        latency, reference_ms = timing.latency_ms, timing.reference_ms
        candidate = Candidate(
            iteration=iteration,
            changed_block=block,
            head=head,
            quantization=quantization.value,
            latency_ms=latency,
            size_bytes=sum(len(content) for content in timed.files.values()),
            timed_on=timing.timed_on,
            reference_ms=reference_ms,
            speedup=round(reference_ms / latency, 4) if reference_ms and latency else None,
            stage=stage,
            **self.scored(model, levels, top1_classes(scores) == self.reference, stages),
        )
        self.candidates.append(candidate)
        return candidate

    def timed_files(self, model: keras.Model, quantization: Quantization, calibration: np.ndarray | None) -> Timed:
        """The shape as the timing runtime takes it: its TFLite flatbuffer, or its file(s) in the runtime's format
        (ONNX, OpenVINO IR), written as the final run writes that format."""
        if self.timed_format is TFLITE:
            return Timed({TFLITE.filename: convert(model, quantization, calibration)})
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            path = Path(folder) / self.timed_format.filename
            write_format(self.timed_format.name, model, path, quantization, calibration, {})
            return Timed({file.name: file.read_bytes() for file in model_files(path, self.timed_format)})

    def scored(self, model: keras.Model, levels: list[int], right: np.ndarray, stages: dict[str, float]) -> dict:
        """What every candidate record says of its shape and its answers on the search split (``right``: whether
        each image was answered as the reference), measured (:meth:`measure`) or screened in float."""
        top1 = float(np.mean(right))
        return {
            "block_ratios": [LEVELS[level] for level in levels],
            "macs": count_macs(model),
            "weights": thin_counts(model, {})[1],
            "search_top1": round(top1, 4),
            "drop_pts": round((self.baseline_top1 - top1) * 100, 2),
            "lost": int(np.sum(self.baseline_right & ~right)),
            "gained": int(np.sum(~self.baseline_right & right)),
            "seconds": round(sum(stages.values()), 1),
            "stages": stages,
        }

    def float_pass(self) -> tuple[np.ndarray, float]:
        """The baseline's outputs on the search split in float, and the seconds that took."""
        started = time.perf_counter()
        outputs = self.baseline.predict(self.search.images.astype(np.float32), batch_size=32, verbose=0)
        return outputs, time.perf_counter() - started

    def keeps_gap(self, gap: Candidate, kept: Candidate) -> bool:
        """The GAP head (always the smaller file) unless it is measured slower beyond the timing's resolution
        (``--goal latency``, :data:`GAP_TIE_SPEED`); by size, whenever it is smaller."""
        if self.options.goal == "latency" and gap.speedup is not None:
            return gap.speedup >= GAP_TIE_SPEED
        return gap.figure(self.options.goal) <= kept.figure(self.options.goal)

    def improves(self, candidate: Candidate, current: Candidate) -> bool:
        """Faster side by side (latency), or a smaller file (size)."""
        if self.options.goal == "latency" and candidate.speedup is not None:
            return candidate.speedup > 1.0
        return candidate.figure(self.options.goal) < current.figure(self.options.goal)

    def with_gap_head(self, model: keras.Model) -> keras.Model:
        """The search's GAP start: the found recipe's own first step (:func:`recipe_for` with the GAP head, its
        epochs, the validations' context and seed), so every shape the search measures stands on the head the
        validations and the final run build, and the validations take this one over (:class:`SharedHead`). Its
        fine-tune runs on pooled features computed once, so the recipe's 20 epochs cost little more than the 5 of
        the proxy it replaces."""
        recipe = recipe_for([0.0] * len(self.anatomy.blocks), "gap", self.options.quantization, 0.0)
        recipe = recipe.with_max_epochs(self.options.max_epochs)
        outcome = apply_step(recipe.steps[0], model, self.final_context)  # step 0's seed is the context's own
        self.shared_head.offer(recipe, 1, outcome.model, [outcome.record])
        return outcome.model

    def relative_ratios(self, model: keras.Model, block: int, level: int) -> dict[str, float]:
        """Per-layer ratios that cut block ``block`` (0-based) of ``model`` to ``level`` of the baseline's widths:
        relative to the current width, so each layer lands on exactly kept_count(full, level) filters
        (kept_count rounds up, hence the half filter)."""
        ratios = {}
        for name, full in zip(self.anatomy.blocks[block], self.full_widths[block], strict=True):
            now = int(model.get_layer(name).filters)
            ratios[name] = max(0.0, 1.0 - (kept_count(full, LEVELS[level]) - 0.5) / now)
        return ratios

    def thinner(
        self, model: keras.Model, kept: dict[str, np.ndarray], block: int, new_level: int
    ) -> tuple[keras.Model, dict[str, np.ndarray]]:
        """(``model`` with block ``block`` (0-based) cut to ``new_level``, its filters as indices into the search's
        starting model). ``kept`` is the same map for ``model``. Every layer after the cut whose inputs differ from
        the starting model's is refitted to answer as the starting model did (:mod:`vggedge.steps.reconstruct`),
        so the error of earlier cuts does not pile up from iteration to iteration; the layers before the cut keep
        ``model``'s refit (the same inputs, the same sampled positions: the same solution), and the refit starts
        from ``model``'s activations at the cut block (:class:`~vggedge.auto.block_inputs.BlockInputs`)

        Why a refit and not NetAdapt's short fine-tune: on the sample, a block-2 cut to 1/4 came back to
        98.5% search-split top-1 from 11.5%, where one pass of distillation over 512 images reached 64.5% from
        a milder cut (to 3/8), and three passes 79.5%, in more time; a five-times larger rate broke it."""
        relative: dict[str, np.ndarray] = {}
        thin, _ = thin_model(model, self.relative_ratios(model, block, new_level), kept=relative)
        composed = dict(kept)
        for name, indices in relative.items():
            composed[name] = kept[name][indices] if name in kept else indices
        lap = Laps(self.stages_before)
        if self.targets is None:  # the starting model's side of every refit, once per search
            self.targets = starting_targets(self.start_model, self.tune_images, seed=self.context.seed)
            lap("targets")
        start = self.block_inputs.start(model, block)
        reconstruct(self.start_model, thin, composed, self.tune_images, targets=self.targets, start=start)
        lap("refit")
        return thin, composed

    # ---- the loop ---------------------------------------------------------------------------------
    def predicted(self, current: Candidate, model: keras.Model, block: int, level: int) -> float:
        """The goal figure a block change would give, from the measured one. Size: scaled by the kernel weights
        left. Latency: by :meth:`latency_model` once the search has measured enough shapes, else by the mean
        of the MACs and weights ratios (batch-1 latency follows the MACs in early blocks and the weight bytes
        in late ones: on the sample, halving block 4 cut the latency by 11%, cutting block 2 to 1/4 not at
        all, though its MACs share is larger). Only picks which level to try; the pick is measured."""
        macs, weights = thin_counts(model, self.relative_ratios(model, block, level))
        now_macs, now_weights = thin_counts(model, {})
        if self.options.goal == "size":
            return current.figure("size") * weights / max(1, now_weights)
        fitted = self.latency_model(current.head)
        if fitted is not None:
            return current.figure("latency") * fitted(macs, weights) / max(1e-9, fitted(now_macs, now_weights))
        return current.figure("latency") * (macs / max(1, now_macs) + weights / max(1, now_weights)) / 2

    def latency_model(self, head: str) -> Callable[[int, int], float] | None:
        """latency ~ a * MACs + b * weights + c (a, b, c >= 0), least squares over the shapes measured so far with
        this head (NetAdapt's per-layer lookup tables, learned from the search's own measurements); None until
        there are four."""
        from scipy.optimize import nnls

        points = [c for c in self.candidates if c.head == head and c.latency_ms]
        if len(points) < 4:
            return None
        design = np.array([[c.macs / 1e6, c.weights / 1e6, 1.0] for c in points])
        coefficients, _ = nnls(design, np.array([c.latency_ms for c in points]))
        if not coefficients[:2].any():
            return None
        a, b, c = coefficients
        return lambda macs, weights: a * macs / 1e6 + b * weights / 1e6 + c

    def proposals(
        self, current: Candidate, model: keras.Model, levels: list[int]
    ) -> tuple[float, list[tuple[int, int]]]:
        """(target, [(block, level)]): per block, the mildest thinner level predicted to cut the goal figure by
        the step. A block that cannot meet it alone proposes nothing (as in NetAdapt: thinning block 1 to 1/8
        because nothing milder reached the target collapsed the model); when no block can, the step is halved,
        down to :data:`MIN_STEP`, so the search ends in smaller steps instead of stopping early."""
        while True:
            target = current.figure(self.options.goal) * (1 - self.step)
            found = []
            for block in range(len(levels)):
                level = next(
                    (
                        level
                        for level in range(levels[block] + 1, len(LEVELS))
                        if self.timer.reachable(level) and self.predicted(current, model, block, level) <= target
                    ),
                    None,
                )
                if level is not None and (block, level) not in self.failed:
                    found.append((block, level))
            if found or self.step / 2 < MIN_STEP:
                return target, found
            self.step /= 2

    def run(self) -> SearchResult:
        goal = self.options.goal
        levels = [0] * len(self.anatomy.blocks)
        current_model = self.baseline
        current = self.measure(current_model, 0, None, levels, "kept")
        current_timed = self.last_timed
        self.on_candidate(current, current.figure(goal))
        baseline_shape = Shape(current, current_model, {}, current_timed, levels)
        head = "kept"
        if self.anatomy.head_kind == "flatten" or self.anatomy.hidden:
            started = time.perf_counter()
            try:
                gap_model = self.with_gap_head(current_model)
            except STOPS as error:  # the head step's own check stopped it: the search keeps the model's head
                self.gap_stopped, gap_model = str(error)[:300], None
            if gap_model is not None:
                self.stages_before = {"head": round(time.perf_counter() - started, 2)}
                gap = self.measure(gap_model, 0, None, levels, "gap", against=current_timed)
                self.on_candidate(gap, current.figure(goal))
                if gap.drop_pts <= self.options.max_drop_pts and self.keeps_gap(gap, current):
                    current_model, current, head = gap_model, gap, "gap"
                    current_timed = self.last_timed
        if current.drop_pts > self.options.max_drop_pts:
            raise UserError(
                f"--recipe auto: the starting model already loses {current.drop_pts:.2f} points on the search split "
                f"({self.options.quantization.value}), more than --max-drop {self.options.max_drop_pts}: "
                "raise --max-drop or give more search images"
            )
        current.kept = True
        self.start_model, self.head = current_model, head
        self.decide_screening(current)
        self.plan_validations(current)
        start = Shape(current, current_model, {}, current_timed, levels)
        proposed: list[Candidate] = []  # every shape the descents keep, each faster than the one before
        found, stopped = self.descend(start, self.options.max_drop_pts, self.descents_deadline, "search", proposed)
        stretch_stopped = ""
        if not self.out_of_time(self.descents_deadline):
            # Half of the time left for the stretch, the rest for validating the path.
            halfway = time.perf_counter() + (self.deadline - time.perf_counter()) / 2
            _, stretch_stopped = self.descend(
                found,
                STRETCH_FACTOR * self.options.max_drop_pts,
                min(halfway, self.descents_deadline),
                "stretch",
                proposed,
            )
        del found  # the last kept shape's model and files: the validations build their own
        self.descents_ended = time.perf_counter()
        # The GAP head is a step of the path like the cuts (its recipe fine-tunes longer than the search's start did):
        # when nothing validates, the baseline's own shape and head (``start`` itself when the head was kept).
        path = [start.candidate, *proposed] if head == "gap" else proposed
        # The refits' and screens' held activations are the descents' only: the validations fine-tune in their place
        self.targets = None
        self.block_inputs.release()
        self.search_inputs.release()
        chosen, returned = self.validate(baseline_shape, path)
        head = chosen.candidate.head
        best = self.final_quantization(chosen.candidate, chosen.model, chosen.timed, chosen.levels, head)
        full = recipe_for(best.block_ratios, head, Quantization(best.quantization), self.options.max_drop_pts)
        recipe = full.with_max_epochs(self.options.max_epochs)
        return SearchResult(
            cut_short=recipe != full,
            recipe=recipe,
            best=best,
            candidates=self.candidates,
            seconds=time.perf_counter() - self.started,
            stopped=stopped,
            search_images=len(self.search),
            tune_images=len(self.tune_images),
            baseline_search_top1=self.baseline_top1,
            final_step=self.final_step,
            stretch_stopped=stretch_stopped,
            validations=self.validations,
            chosen=returned,
            returned_start=chosen is baseline_shape,
            gap_stopped=self.gap_stopped,
            screening=self.screening_record,
            time_split=self.time_split(),
        )

    def plan_validations(self, start: Candidate) -> None:
        """Keep the validations' time before the descents start (:func:`validation_plan`): from the float pass's
        seconds per image, the found recipe's fine-tune epochs, and what converting and scoring the start took."""
        epochs = min(FINAL_FILTER_EPOCHS, self.options.max_epochs or FINAL_FILTER_EPOCHS)
        self.plan = validation_plan(
            self.options.minutes * 60,
            self.float_scoring_s / max(1, len(self.search)),
            len(self.tune),
            epochs,
            start.stages.get("convert", 0.0),
            start.stages.get("score", 0.0),
        )
        self.descents_deadline = self.deadline - self.plan.reserved_s

    def time_split(self) -> dict | None:
        """How the search's time went: the plan, then the seconds the descents and the validations took."""
        if self.plan is None:
            return None
        ended = self.descents_ended or time.perf_counter()
        return {
            **self.plan.describe(),
            "descents_s": round(ended - self.started, 1),
            "validations_s": round(time.perf_counter() - ended, 1),
        }

    def next_step(self, trials: list[Shape], current: Shape, bar: float) -> Shape | None:
        """The trial the descent keeps: of the measured ones within ``bar`` and an improvement on ``current`` (measured
        faster side by side, or smaller: the MACs-based pick of a level can miss the target, and a candidate that does
        not improve on the current one is no step), the best search-split top-1, then the better goal figure."""
        goal = self.options.goal
        steps = [
            t
            for t in trials
            if t.model is not None
            and not t.candidate.screened
            and t.candidate.drop_pts <= bar
            and self.improves(t.candidate, current.candidate)
        ]
        return max(steps, key=lambda t: (t.candidate.search_top1, -t.candidate.figure(goal)), default=None)

    def release_losers(self, trials: list[Shape], current: Shape, bar: float) -> None:
        """Drop the model and files of every trial that can no longer become the next current model, as soon as it
        is measured, instead of holding an iteration's trials to its end (a 224-pixel VGG16 cut under its flatten head
        is 0.3-0.55 GB of weights and a 0.13 GB int8 file). What may still step: a screened trial within ``bar`` (it
        may be converted) and :meth:`next_step` as things stand."""
        best = self.next_step(trials, current, bar)
        for trial in trials:
            may_step = trial is best or (trial.candidate.screened and trial.candidate.drop_pts <= bar)
            if not may_step:
                trial.model, trial.timed = None, None

    def descend(
        self, shape: Shape, bar: float, deadline: float, stage: str, proposed: list[Candidate] | None = None
    ) -> tuple[Shape, str]:
        """NetAdapt's iterations from ``shape``: each keeps the candidate with the best search-split top-1 among those
        within ``bar`` points of the baseline and measured faster (smaller) than the current model. Returns the last
        shape kept and why the descent stopped; the kept candidates are appended to ``proposed`` too."""
        self.step, self.failed = self.options.step, set()
        current = shape
        budget = "the budget" if stage == "search" else f"the stretch's {bar:g} points"
        stopped = f"{self.options.max_iterations} iterations"
        for _ in range(self.options.max_iterations):
            self.iteration += 1
            iteration = self.iteration
            target, proposals = self.proposals(current.candidate, current.model, current.levels)
            if not proposals:
                last = max(level for level in range(len(LEVELS)) if self.timer.reachable(level))
                thinnest = all(level == last for level in current.levels)
                stopped = "every block is at its thinnest level" if thinnest else "no block alone can cut it further"
                break
            trials: list[Shape] = []
            for block, new_level in proposals:
                # Time is checked between candidates, and every iteration measures at least one: a slow start
                # (a busy machine) still gets one step, and the search overruns its time by one candidate at most.
                if trials and self.out_of_time(deadline):
                    break
                levels = [*current.levels[:block], new_level, *current.levels[block + 1 :]]
                model, kept = self.thinner(current.model, current.kept, block, new_level)
                if self.screening:
                    candidate = self.screen(model, current.model, iteration, block, levels, stage)
                else:
                    candidate = self.measure(model, iteration, block + 1, levels, self.head, current.timed, stage=stage)
                self.on_candidate(candidate, target)
                trials.append(Shape(candidate, model, kept, None if self.screening else self.last_timed, levels))
                self.release_losers(trials, current, bar)
            if self.screening:
                trials += self.convert_screened(trials, current, bar, deadline, iteration, target, stage)
                self.release_losers(trials, current, bar)
            step = self.next_step(trials, current, bar)
            if step is None:
                # A milder step may let another block (one that could not meet the larger cut alone) propose;
                # the candidates that failed from this model are not tried again.
                self.failed |= {
                    (t.candidate.changed_block - 1, t.levels[t.candidate.changed_block - 1]) for t in trials
                }
                if self.out_of_time(deadline):
                    stopped = "time is up"
                    break
                if self.step / 2 >= MIN_STEP:
                    self.step /= 2
                    continue
                stopped = f"no candidate of iteration {iteration} was both within {budget} and an improvement"
                break
            current = step
            current.candidate.kept = True
            if proposed is not None:
                proposed.append(current.candidate)
            self.failed = set()
            if self.out_of_time(deadline):
                stopped = "time is up"
                break
        if stage == "search":
            self.final_step = self.step
        return current, stopped
