"""``--recipe auto``: the fastest (or smallest) model within the accuracy budget, searched per conv block.

Uniform filter pruning (the ``fast`` recipe: half of every layer) is far from the best shape: NetAdapt
(Yang et al., ECCV 2018) gets up to 1.7x lower measured latency at equal accuracy by choosing per-layer
widths against latencies measured where the model will run. This module does that for a VGG's conv
blocks, in NetAdapt's manner:

1. Start from the baseline's shape, converted with the final quantization and timed by the TFLite
   interpreter (this machine's, at the target's thread count), and from its head swapped for global
   average pooling when the anatomy has a dense head (kept when it stays within the budget and helps).
2. Each iteration asks for the goal figure (latency, or file size) cut by ``step``. For every conv block
   that can still be thinned, one candidate: the block's keep ratio lowered to the first level
   (1, 7/8, 3/4, 5/8, 1/2, 3/8, 1/4, 1/8) predicted to meet the target (from the measured figure scaled by the
   MACs or weights the block change removes; the candidate is then measured, and the measurement is what
   the trace reports), the filters with the smallest L1 norms removed from the current model, the layers
   after the cut refitted by least squares to answer as before (instead of NetAdapt's short fine-tune:
   :meth:`Searcher.thinner` has the measurement), conversion, timing, and top-1 on the *search split*.
3. The candidate with the best search-split top-1 among those within the budget (against the baseline on
   that split) and faster (smaller) than the current model becomes the current model. When none is, the
   step is halved and the iteration tried again without the candidates that failed (a milder cut lets
   blocks propose that could not meet the larger one alone); the search stops when the step would fall
   below :data:`MIN_STEP`, when its share of the time is up (:data:`VALIDATION_SHARE` is kept for the validations),
   or when every block is at its thinnest level.
4. The refit is a pessimistic proxy for what the final fine-tunes reach (on the sample, shapes the refit put 1.5-3.5
   points under the baseline ended +0.3 to +0.8 after them; a short distillation fine-tune after the refit did not
   close the gap). So with time left, the descent goes on from the shape it found under a :data:`STRETCH_FACTOR`
   times larger bar. Every shape kept on the way (under the budget and in the stretch) is only a proposal until it
   is *validated*, by bisection along the path: the found recipe's own fine-tunes, from the baseline, on the training
   images outside the search split, then top-1 on the search split, where its drop plus one standard error of that
   drop must stay within the budget (:func:`drop_bound`). The fastest shape that passes is the one the search returns;
   when none does, the starting shape (the baseline's widths).
5. The best shape becomes an explicit recipe (``filter-prune`` with ``block_ratios``, ``head``,
   ``quantize``) that the pipeline then runs from the baseline with the long fine-tunes, converts,
   verifies, holds to the budget and reports like any other; ``recipe.toml`` replays it.

The search split is carved from the training images (the first ones in the fixed checksum order), so
no candidate is ever chosen on the evaluation images that the report's accuracy comes from. The refits
see the rest of the training images.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from vggedge.convert import convert
from vggedge.data import FileSplit, Split
from vggedge.device.client import BenchClient
from vggedge.device.latency_table import LatencyTable
from vggedge.device.runtime import TFLiteModel
from vggedge.errors import UserError
from vggedge.flops import count_macs
from vggedge.keras_env import keras
from vggedge.metrics import adaptive_runs, latency_summary, time_calls, time_interleaved, top1_classes
from vggedge.models.anatomy import Anatomy, find_anatomy, fingerprint
from vggedge.quantization import Quantization
from vggedge.recipe import FilterPruneStep, HeadStep, QuantizeStep, Recipe
from vggedge.steps import StepContext, apply_step
from vggedge.steps.filters import kept_count, thin_counts, thin_model
from vggedge.steps.reconstruct import first_images, reconstruct

Goal = Literal["latency", "size"]
# Fractions of a block's filters removed, level by level: keep 1, 7/8, 3/4, 5/8, 1/2, 3/8, 1/4, 1/8. Eighths
# rather than quarters near the top: the first cut of a block is the largest shock for the layers after it.
LEVELS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
# The final recipe's fine-tunes: those of the shipped `fast` recipe (filter-prune, then the GAP head).
FINAL_FILTER_EPOCHS = 6
FINAL_FILTER_RATE = 2e-4
FINAL_HEAD_EPOCHS = 20
FINAL_HEAD_RATE = 1e-3
SHORT_HEAD_EPOCHS = 5
MIN_STEP = 0.02  # the smallest cut an iteration asks for, after halving the step when no block could meet it
# Tried on the found shape against full int8 (--goal latency): the first for CPUs without fast int8 kernels, the
# second keeps activations in float with int8 weights.
ALTERNATIVE_QUANTIZATIONS = (Quantization.FLOAT16, Quantization.DYNAMIC)
# How much faster (side by side) an alternative must be measured to replace int8: int8 is also the smallest file, and a
# sub-millisecond model's interleaved timing over a second or two is not exact to a few percent (one CI search took
# dynamic range for a lead of 1.09x on the tiny model).
FINAL_QUANTIZATION_MARGIN = 1.05
# The stretch's bar on the search split, as a multiple of --max-drop: the refit's drop overstates the final one by
# about 1-3 points on the sample; a shape kept under it is only a proposal until a validation passes it.
STRETCH_FACTOR = 3.0
# A validated shape passes when its drop on the search split plus this many standard errors of that drop stays within
# --max-drop: the one-standard-error rule of model selection (Breiman et al. 1984; Hastie et al., The Elements of
# Statistical Learning, 7.10), on the paired images. The evaluation images are another sample: a drop measured at the
# budget line is a coin toss there (three validations at exactly -1.00 on the sample ended +0.28, +1.11 and -1.11), and
# a shape that disagrees with the baseline on many images moves more from one sample to the next (a form's shape
# passed at -0.34 on 291 images and ended -1.67 on 300). A fixed margin of a quarter of the budget did not scale
# with either; the standard error does: with the default 400 images at 1 point it adds 0.25 point for one
# disagreement and 0.5 for four (a shape at -0.50 passes from 3 lost and 1 gained, fails from 4 and 2), so a shape
# that trades many images with the baseline needs room for them.
VALIDATION_STANDARD_ERRORS = 1.0
# The share of --search-minutes the descents leave to the validations: a descent that runs until the time is up leaves
# time for one validation of a long path, which then rarely passes (the suite's half-minute search probed the middle of
# a 7-step path once and returned the plain int8 shape). A descent that ends earlier leaves more, as before.
VALIDATION_SHARE = 1 / 3
MIN_TIMING_S = 1.0  # timed invocations per candidate last at least this long (0.5 s let a 1.06 ms shape read 1.55)
# --goal latency: the GAP head is kept when measured at least this fraction of the kept head's speed. Side by side,
# the two start models differ only in the head, a few percent of a conv stack's time: the held-out forms measured
# GAP at 0.96-0.99x, within the timing's resolution, and left a 6-7x smaller model on the table. Within it, the
# smaller file wins (the mirror of FINAL_QUANTIZATION_MARGIN, which keeps the smaller int8 file in a near tie).
GAP_TIE_SPEED = 1 / FINAL_QUANTIZATION_MARGIN
# The carved search split's default size: one image at most this share of --max-drop (400 images at 1 point), so
# that a validation is not decided by one image (at 200, one image was half the budget, and the sample's
# stretch validations both ended one image past it). Never below SEARCH_IMAGES_FLOOR, never more than half the
# training images (the refits train on the rest).
SEARCH_IMAGE_SHARE = 0.25
SEARCH_IMAGES_FLOOR = 200


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    goal: Goal = "latency"
    max_drop_pts: float = 1.0
    minutes: float = 20.0
    step: float = 0.2  # each iteration asks for the goal figure cut by this fraction
    search_images: int | None = None  # carved from the training images; None: search_split_size's default
    quantization: Quantization = Quantization.INT8
    threads: int | None = None
    runs: int = 10  # timed invocations per candidate (after 2 untimed)
    max_iterations: int = 50
    # `vggedge bench --serve` on the device (http://HOST:PORT), or a latency table it measured (TABLE.json); None:
    # this machine
    time_on: str | None = None
    time_on_token: str | None = dataclasses.field(default=None, repr=False)
    max_epochs: int | None = None  # --max-epochs: the GAP start's, the validations' and the found recipe's fine-tunes
    # --search-data: labelled images the baseline never trained on, ranked on instead of a split carved from the
    # training images (which a user's model has usually been trained on, so a thinner model's drop looks smaller)
    search_data: Path | None = None


@dataclasses.dataclass
class Candidate:
    """One measured shape: where the search went, and why it kept or left it."""

    iteration: int
    changed_block: int | None  # 1-based block this candidate thinned; None for the starting points
    block_ratios: list[float]
    head: str  # "kept" or "gap"
    quantization: str
    latency_ms: float | None
    size_bytes: int
    macs: int
    weights: int  # conv and dense kernel weights: with the MACs, what the latency model is fitted on
    search_top1: float
    drop_pts: float
    kept: bool = False
    timed_on: str = ""
    seconds: float = 0.0
    # --goal latency: the current (kept) model timed beside it, interleaved, so machine noise hits both alike;
    # speedup = reference_ms / latency_ms, and only a candidate measured faster side by side (> 1) is a step
    reference_ms: float | None = None
    speedup: float | None = None
    # "search" (kept under --max-drop), "stretch" (under STRETCH_FACTOR x --max-drop, a proposal), "validated" (the
    # shape after the final recipe's fine-tunes: its search_top1 is what the validation decided on)
    stage: str = "search"
    # Search-split images only the baseline got right (lost) and only this shape got right (gained): the paired
    # counts the drop comes from, and its standard error (drop_bound)
    lost: int = 0
    gained: int = 0
    # A validation: the drop plus VALIDATION_STANDARD_ERRORS standard errors, and whether that is within --max-drop
    drop_bound_pts: float | None = None
    passed: bool | None = None

    def figure(self, goal: Goal) -> float:
        return float(self.latency_ms if goal == "latency" else self.size_bytes)


@dataclasses.dataclass
class SearchResult:
    recipe: Recipe
    best: Candidate
    candidates: list[Candidate]
    seconds: float
    stopped: str  # why the search ended
    search_images: int
    tune_images: int
    baseline_search_top1: float
    final_step: float
    stretch_stopped: str = ""  # why the stretch ended ("" when there was no time for it)
    cut_short: bool = False  # --max-epochs cut the found recipe's fine-tunes
    validations: int = 0
    chosen: str = ""  # which shape the search returned, and why (a validated one, or the start when none passed)

    def describe(self, goal: Goal, options: SearchOptions) -> dict:
        """The report's ``search`` section."""
        return {
            "goal": goal,
            "max_drop_pts": options.max_drop_pts,
            "step": options.step,
            "final_step": round(self.final_step, 4),
            "levels_removed": list(LEVELS),
            "final_quantization_margin": FINAL_QUANTIZATION_MARGIN,
            "gap_tie_speed": round(GAP_TIE_SPEED, 4),
            "seconds": round(self.seconds, 1),
            "stopped": self.stopped,
            "stretch": {
                "bar_pts": round(STRETCH_FACTOR * options.max_drop_pts, 3),
                "stopped": self.stretch_stopped or "no time left after the search",
            },
            "validation": {
                "validations": self.validations,
                "validated_with": "the found recipe's fine-tunes from the baseline, on the training images outside "
                "the search split; top-1 on the search split",
                "rule": f"drop + {VALIDATION_STANDARD_ERRORS:g} standard error(s) of the paired drop <= max_drop_pts",
                "standard_errors": VALIDATION_STANDARD_ERRORS,
                "chosen": self.chosen,
            },
            "complete": True,
            "images": {"search": self.search_images, "reconstruction": self.tune_images},
            "search_from": search_source(options),
            "repair": "least-squares refit of the layers after each cut (vggedge.steps.reconstruct)",
            "baseline_search_top1": round(self.baseline_search_top1, 4),
            "ranked_on": f"search split ({search_source(options)}; never the evaluation images)",
            "latency_from": self.best.timed_on,
            "best": dataclasses.asdict(self.best),
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
            "pareto": pareto_front(self.candidates, goal),
        }


def search_split_size(options: SearchOptions, train_images: int) -> int:
    """How many training images to carve for ranking: ``--search-images`` when given, else enough that one image is
    at most :data:`SEARCH_IMAGE_SHARE` of the budget, between :data:`SEARCH_IMAGES_FLOOR` and half the training
    images."""
    if options.search_images is not None:
        return options.search_images
    fine = math.ceil(100.0 / (SEARCH_IMAGE_SHARE * options.max_drop_pts) - 1e-9)
    return max(SEARCH_IMAGES_FLOOR, min(fine, train_images // 2))


def drop_bound(lost: int, gained: int, images: int) -> float:
    """The drop (points) plus :data:`VALIDATION_STANDARD_ERRORS` standard errors of it, from the paired counts on
    ``images`` search images: per image the shape scores -1 (lost), +1 (gained) or 0 against the baseline, and the
    drop's standard error is that variable's over the square root of ``images``. At least one disagreement (in the
    variance only): a shape that disagrees on none of 100 images may still disagree on about one image in 100
    elsewhere, and should not be read as exact. (One more than counted in every case rejected the sample's shapes at
    -0.50 from 3 lost and 1 gained, bound 1.06, down to the plain GAP shape, 0.31x as fast as `fast`.)"""
    if images <= 0:
        return math.inf
    drop = (lost - gained) / images
    second_moment = max(lost + gained, 1) / images
    error = math.sqrt(max(0.0, second_moment - drop**2) / images)
    return 100.0 * (drop + VALIDATION_STANDARD_ERRORS * error)


def search_source(options: SearchOptions) -> str:
    return f"--search-data {options.search_data}" if options.search_data else "carved from the training images"


def pareto_front(candidates: list[Candidate], goal: Goal) -> list[int]:
    """Indices of the candidates no other beats on both the goal figure and search-split top-1."""
    front = []
    for i, c in enumerate(candidates):
        dominated = any(
            o.figure(goal) <= c.figure(goal)
            and o.search_top1 >= c.search_top1
            and (o.figure(goal) < c.figure(goal) or o.search_top1 > c.search_top1)
            for o in candidates
        )
        if not dominated:
            front.append(i)
    return front


def check_searchable(anatomy: Anatomy) -> None:
    if not anatomy.blocks or not any(anatomy.blocks):
        raise UserError(f"--recipe auto thins conv blocks, and {anatomy.name!r} has none to thin")


def recipe_for(block_ratios: list[float], head: str, quantization: Quantization, max_drop: float) -> Recipe:
    """The found shape as explicit steps, replayable with ``--recipe recipe.toml``."""
    steps: list = []
    if any(block_ratios):
        steps.append(
            FilterPruneStep(
                block_ratios=block_ratios,
                refit=True,  # start the long fine-tune from the refitted shape, as the search measured it
                epochs=FINAL_FILTER_EPOCHS,
                learning_rate=FINAL_FILTER_RATE,
            )
        )
    if head == "gap":
        steps.append(HeadStep(train="distill", init="lstsq", epochs=FINAL_HEAD_EPOCHS, learning_rate=FINAL_HEAD_RATE))
    steps.append(QuantizeStep(mode=quantization.value))
    kept = ", ".join(f"{1 - r:.3g}" for r in block_ratios)
    return Recipe(
        name="auto",
        description=(
            f"Found by --recipe auto: conv blocks keep {kept} of their filters, head {head}, {quantization.value}."
        ),
        max_drop=max_drop,
        steps=steps,
    )


@dataclasses.dataclass
class Shape:
    """Where a descent stands: the kept candidate, its model, its filters as indices into the search's starting
    model, the flatbuffer it was timed as, and its level per block."""

    candidate: Candidate
    model: keras.Model
    kept: dict[str, np.ndarray]
    flatbuffer: bytes
    levels: list[int]


class Searcher:
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
    ) -> None:
        self.baseline = baseline
        self.anatomy = find_anatomy(baseline)
        check_searchable(self.anatomy)
        self.search = search
        self.tune = tune
        self.calibration = calibration
        self.options = options
        self.context = dataclasses.replace(context, train=tune, train_labels=None)  # distillation
        # The validations' fine-tunes: the final recipe's targets (labels when they index the outputs), without the
        # search split, whose top-1 decides.
        labels = tune.labels if context.train_labels is not None else None
        self.final_context = dataclasses.replace(context, train=tune, train_labels=labels)
        self.on_candidate = on_candidate or (lambda candidate, target: None)
        self.started = time.perf_counter()
        self.deadline = self.started + options.minutes * 60
        # The descents stop here at the latest, so the validations have time of their own (VALIDATION_SHARE)
        self.descents_deadline = self.started + options.minutes * 60 * (1 - VALIDATION_SHARE)
        self.iteration = 0  # across the search and the stretch
        self.validations = 0
        self.head = "kept"
        self.final_step = options.step
        self.candidates: list[Candidate] = []
        self.step = options.step  # per descent: halved when no block can meet it, or no candidate stays within its bar
        self.failed: set[tuple[int, int]] = set()  # (block, level) that failed from the current model
        teacher = baseline.predict(search.images.astype(np.float32), batch_size=32, verbose=0)
        self.reference = search.labels if labels_match else top1_classes(teacher)
        self.baseline_right = top1_classes(teacher) == self.reference
        self.baseline_top1 = float(np.mean(self.baseline_right))
        self.full_widths = [[int(self.baseline.get_layer(n).filters) for n in block] for block in self.anatomy.blocks]
        self.tune_images = first_images(tune)  # what each candidate's refit sees, decoded once
        self.device: BenchClient | None = None
        self.table: LatencyTable | None = None
        if options.time_on and options.time_on.startswith(("http://", "https://")):
            self.device = BenchClient(options.time_on, options.time_on_token)
        elif options.time_on:
            self.table = LatencyTable.load(Path(options.time_on))
            self.table.require(fingerprint(baseline, self.anatomy), options.quantization.value, options.threads)

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
        """Convert (in ``quantization``, default the search's), score on the search split and time one shape; with
        ``against`` (the current model's flatbuffer), time both side by side. The flatbuffer is left in
        :attr:`last_flatbuffer`."""
        started = time.perf_counter()
        quantization = quantization or self.options.quantization
        calibration = self.calibration if quantization.calibrated else None
        flatbuffer = convert(model, quantization, calibration)
        self.last_flatbuffer = flatbuffer
        reference_ms = None
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            path = Path(folder) / "candidate.tflite"
            path.write_bytes(flatbuffer)
            tflite = TFLiteModel(path, threads=self.options.threads)
            scores = np.stack([tflite.predict_one(image) for image in self.search.images])
            if self.table:
                # Predicted from the pieces the device measured: deterministic, so no side-by-side reference.
                latency, timed_on = self.table.predict(levels, head), self.table.describe()
            elif self.device:
                # On the board itself: the server times each file at least MIN_TIMING_S; the current model
                # right after the candidate, so the two figures are taken as close together as the board allows.
                latency, timed_on = self.device.time(flatbuffer, self.options.threads, self.options.runs)
                if against is not None and self.options.goal == "latency":
                    reference_ms, _ = self.device.time(against, self.options.threads, self.options.runs)
            else:
                tflite.set_input(self.search.images[0])
                if against is not None and self.options.goal == "latency":
                    (Path(folder) / "current.tflite").write_bytes(against)
                    current = TFLiteModel(Path(folder) / "current.tflite", threads=self.options.threads)
                    current.set_input(self.search.images[0])
                    latency, reference_ms = self.time_side_by_side(tflite, current)
                else:
                    latency = self.time(tflite)
                timed_on = f"this machine ({tflite.runtime.name} {tflite.runtime.version}, {tflite.threads} threads)"
        right = top1_classes(scores) == self.reference
        top1 = float(np.mean(right))
        candidate = Candidate(
            iteration=iteration,
            changed_block=block,
            block_ratios=[LEVELS[level] for level in levels],
            head=head,
            quantization=quantization.value,
            latency_ms=latency,
            size_bytes=len(flatbuffer),
            macs=count_macs(model),
            weights=thin_counts(model, {})[1],
            search_top1=round(top1, 4),
            drop_pts=round((self.baseline_top1 - top1) * 100, 2),
            timed_on=timed_on,
            seconds=round(time.perf_counter() - started, 1),
            reference_ms=reference_ms,
            speedup=round(reference_ms / latency, 4) if reference_ms and latency else None,
            stage=stage,
            lost=int(np.sum(self.baseline_right & ~right)),
            gained=int(np.sum(~self.baseline_right & right)),
        )
        self.candidates.append(candidate)
        return candidate

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

    def time_side_by_side(self, candidate: TFLiteModel, current: TFLiteModel) -> tuple[float, float]:
        """(candidate p50, current p50) from interleaved invocations, at least :data:`MIN_TIMING_S` in all: a
        burst of load on a shared machine slows both alike instead of deciding the comparison (one search on the
        sample kept a shape measured at 0.50 ms that measured 1.41 ms in the benchmark afterwards)."""
        ours, theirs = time_interleaved([candidate.invoke_once, current.invoke_once], MIN_TIMING_S, self.options.runs)
        return ours.p50, theirs.p50

    def time(self, tflite: TFLiteModel) -> float:
        """p50 of at least ``runs`` invocations and at least :data:`MIN_TIMING_S` of them: a small model's
        sub-millisecond calls need hundreds of samples before their median stops moving."""
        runs = adaptive_runs(tflite.invoke_once, MIN_TIMING_S, self.options.runs)
        return latency_summary(time_calls(tflite.invoke_once, warmup=0, runs=runs)).p50

    def with_gap_head(self, model: keras.Model) -> keras.Model:
        epochs = min(SHORT_HEAD_EPOCHS, self.options.max_epochs or SHORT_HEAD_EPOCHS)
        step = HeadStep(train="distill", init="lstsq", epochs=epochs, learning_rate=FINAL_HEAD_RATE)
        return apply_step(step, model, self.context).model

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
        starting model). ``kept`` is the same map for ``model``. Every layer whose inputs differ from the starting
        model's is refitted to answer as the starting model did (:mod:`vggedge.steps.reconstruct`), so the
        error of earlier cuts does not pile up from iteration to iteration.

        Why a refit and not NetAdapt's short fine-tune: on the sample, a block-2 cut to 1/4 came back to
        98.5% search-split top-1 from 11.5%, where one pass of distillation over 512 images reached 64.5% from
        a milder cut (to 3/8), and three passes 79.5%, in more time; a five-times larger rate broke it."""
        relative: dict[str, np.ndarray] = {}
        thin, _ = thin_model(model, self.relative_ratios(model, block, new_level), kept=relative)
        composed = dict(kept)
        for name, indices in relative.items():
            composed[name] = kept[name][indices] if name in kept else indices
        reconstruct(self.start_model, thin, composed, self.tune_images, seed=self.context.seed + len(self.candidates))
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

    def reachable(self, level: int) -> bool:
        """A level the timing can answer for: any here or on a server; with a table, the levels its kit holds."""
        return self.table is None or level in self.table.levels

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
                        if self.reachable(level) and self.predicted(current, model, block, level) <= target
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
        current_flatbuffer = self.last_flatbuffer
        self.on_candidate(current, current.figure(goal))
        baseline_shape = Shape(current, current_model, {}, current_flatbuffer, levels)
        head = "kept"
        if self.anatomy.head_kind == "flatten" or self.anatomy.hidden:
            gap_model = self.with_gap_head(current_model)
            gap = self.measure(gap_model, 0, None, levels, "gap", against=current_flatbuffer)
            self.on_candidate(gap, current.figure(goal))
            if gap.drop_pts <= self.options.max_drop_pts and self.keeps_gap(gap, current):
                current_model, current, head = gap_model, gap, "gap"
                current_flatbuffer = self.last_flatbuffer
        if current.drop_pts > self.options.max_drop_pts:
            raise UserError(
                f"--recipe auto: the starting model already loses {current.drop_pts:.2f} points on the search split "
                f"({self.options.quantization.value}), more than --max-drop {self.options.max_drop_pts}: "
                "raise --max-drop or give more search images"
            )
        current.kept = True
        self.start_model, self.head = current_model, head
        start = Shape(current, current_model, {}, current_flatbuffer, levels)
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
        # The GAP head is a step of the path like the cuts (its recipe fine-tunes longer than the search's start did):
        # when nothing validates, the baseline's own shape and head (``start`` itself when the head was kept).
        path = [start.candidate, *proposed] if head == "gap" else proposed
        chosen, returned = self.validate(baseline_shape, path)
        head = chosen.candidate.head
        best = self.final_quantization(chosen.candidate, chosen.model, chosen.flatbuffer, chosen.levels, head)
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
        )

    def descend(
        self, shape: Shape, bar: float, deadline: float, stage: str, proposed: list[Candidate] | None = None
    ) -> tuple[Shape, str]:
        """NetAdapt's iterations from ``shape``: each keeps the candidate with the best search-split top-1 among those
        within ``bar`` points of the baseline and measured faster (smaller) than the current model. Returns the last
        shape kept and why the descent stopped; the kept candidates are appended to ``proposed`` too."""
        goal = self.options.goal
        self.step, self.failed = self.options.step, set()
        current = shape
        budget = "the budget" if stage == "search" else f"the stretch's {bar:g} points"
        stopped = f"{self.options.max_iterations} iterations"
        for _ in range(self.options.max_iterations):
            self.iteration += 1
            iteration = self.iteration
            target, proposals = self.proposals(current.candidate, current.model, current.levels)
            if not proposals:
                last = max(level for level in range(len(LEVELS)) if self.reachable(level))
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
                candidate = self.measure(
                    model, iteration, block + 1, levels, self.head, current.flatbuffer, stage=stage
                )
                self.on_candidate(candidate, target)
                trials.append(Shape(candidate, model, kept, self.last_flatbuffer, levels))
            # Within the bar and measured faster (side by side) or smaller than the current model: the MACs-based
            # pick of a level can miss the target, and a candidate that does not improve on the current one is no step.
            within = [
                t for t in trials if t.candidate.drop_pts <= bar and self.improves(t.candidate, current.candidate)
            ]
            if not within:
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
            current = max(within, key=lambda t: (t.candidate.search_top1, -t.candidate.figure(goal)))
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

    def validate(self, start: Shape, proposed: list[Candidate]) -> tuple[Shape, str]:
        """The fastest of the ``proposed`` shapes (the descents' path, each faster than the one before; the GAP head
        first when the search adopted it) that passes its validation: built as the found recipe builds it, its drop on
        the search split plus one standard error within the budget (:func:`drop_bound`). By bisection while time is
        left, and at least once: a search that ran out of time in its descent still returns a shape measured after
        the final recipe's own fine-tunes, never the refit's proxy. ``start`` when none passes: the baseline's widths,
        with its own head when the path begins with the GAP swap. Bisection assumes the accuracy after fine-tuning
        falls along the path, as it does on average. Returns the shape and which one it is, for the report."""
        low, high, chosen = 0, len(proposed), start  # index 0 is ``start``, index i is proposed[i - 1]
        returned = (
            "the starting shape: nothing proposed" if not proposed else "the starting shape: no validation passed"
        )
        asked = 0
        while low < high and (asked == 0 or not self.out_of_time()):
            middle = (low + high + 1) // 2
            shape = self.validated(proposed[middle - 1], start.flatbuffer)
            asked += 1
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

    def validated(self, proposal: Candidate, against: bytes) -> Shape:
        """``proposal``'s shape built as the final recipe builds it (from the baseline, its fine-tunes), on the
        training images outside the search split, then measured like a candidate (timed beside ``against``)."""
        started = time.perf_counter()
        recipe = recipe_for(proposal.block_ratios, proposal.head, self.options.quantization, self.options.max_drop_pts)
        recipe = recipe.with_max_epochs(self.options.max_epochs)  # as the found recipe will run
        from vggedge.pipeline import apply_steps  # the pipeline runs the search: loaded by now, no import cycle

        model, _ = apply_steps(recipe, self.baseline, self.final_context, self.final_context.seed)
        levels = [LEVELS.index(ratio) for ratio in proposal.block_ratios]
        candidate = self.measure(
            model, proposal.iteration, proposal.changed_block, levels, proposal.head, against, stage="validated"
        )
        candidate.seconds = round(time.perf_counter() - started, 1)
        self.judge(candidate)
        self.validations += 1
        self.on_candidate(candidate, proposal.figure(self.options.goal))
        return Shape(candidate, model, {}, self.last_flatbuffer, levels)

    def judge(self, candidate: Candidate) -> None:
        """A validated shape's verdict: its drop plus :data:`VALIDATION_STANDARD_ERRORS` standard errors within the
        budget (:func:`drop_bound`)."""
        bound = drop_bound(candidate.lost, candidate.gained, len(self.search))
        candidate.passed = bound <= self.options.max_drop_pts + 1e-9  # the exact figure: 1.004 is over 1 point
        candidate.drop_bound_pts = round(bound, 2) + 0.0

    def final_quantization(
        self, current: Candidate, model: keras.Model, flatbuffer: bytes, levels: list[int], head: str
    ) -> Candidate:
        """The found shape in each other quantization the target might run faster (float16 weights, dynamic range),
        timed side by side with the search's: one measured faster by :data:`FINAL_QUANTIZATION_MARGIN` and within the
        budget replaces it (``--goal latency``; a full-int8 file is always the smallest, so ``--goal size`` keeps
        it). On AVX-512 VNNI or AMX int8 wins; on a CPU without fast int8 kernels a float16 or dynamic model may not."""
        if self.options.goal != "latency" or self.options.quantization != Quantization.INT8 or self.table:
            return current  # a table times int8 pieces only
        iteration = max(c.iteration for c in self.candidates) + 1
        chosen = current
        for mode in ALTERNATIVE_QUANTIZATIONS:
            if self.out_of_time() and chosen is not current:
                break
            candidate = self.measure(model, iteration, None, levels, head, against=flatbuffer, quantization=mode)
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


def carve(train: FileSplit | Split, count: int) -> tuple[Split, FileSplit | Split]:
    """(search split, the rest): the first ``count`` training images in their fixed checksum order."""
    if isinstance(train, FileSplit):
        return train.split_off(count)
    return train.first(count), Split(train.images[count:], train.labels[count:], train.keys[count:])
