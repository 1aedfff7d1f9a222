"""Screening candidates in float before converting them, where a conversion costs more than a float pass.

On a 224-pixel VGG16 that keeps its flatten head, converting one candidate to int8 took 14-15 s, most of its cost
(fc1's 103M weights alone convert in 10 s), while its refitted Keras model scores the search split from the cut
block on in a few seconds. Screening then scores every candidate of an iteration in float; those within the bar are
converted, scored in int8 and timed beside the current model, best float top-1 first, until one is within the bar
and an improvement (what a step needs, as without screening). A screened candidate's record says it was scored in
float only. Whether the search screens is decided once, by measurement (:data:`SCREEN_FACTOR`), and reported.
"""

from __future__ import annotations

from vggedge.auto.rules import SCREEN_FACTOR
from vggedge.auto.trace import Candidate, Shape
from vggedge.backend.keras_env import keras
from vggedge.core.metrics import top1_classes
from vggedge.core.progress import Laps
from vggedge.steps.reconstruct import outputs_from


class Screening:
    """The :class:`~vggedge.auto.searcher.Searcher`'s float screen (it provides the baseline's timed float pass, the
    search split, the current model's activations there per block, :meth:`measure` and the bookkeeping used here)."""

    def decide_screening(self, start: Candidate) -> None:
        """Screen when converting the starting shape took more than :data:`SCREEN_FACTOR` times scoring the search
        split in float with the baseline (an upper bound for a candidate, which runs from its cut block). Before
        deciding against it, the float pass is timed once more and the faster of the two counts: the first pass
        runs while the process is still settling (a real-photo run's took 10.3 s where later ones took 5.1-5.3 s,
        which turned screening off and halved the candidates the search measured)."""
        convert_s = start.stages.get("convert", 0.0)
        passes = [self.float_scoring_s]
        if convert_s <= SCREEN_FACTOR * passes[0]:
            passes.append(self.float_pass()[1])
        self.float_scoring_s = min(passes)
        self.screening = convert_s > SCREEN_FACTOR * self.float_scoring_s
        self.screening_record = {
            "on": self.screening,
            "convert_s": round(convert_s, 2),
            "float_scoring_s": round(self.float_scoring_s, 2),
            "float_passes_s": [round(seconds, 2) for seconds in passes],
            "factor": SCREEN_FACTOR,
        }

    def screen(  # noqa: PLR0913
        self, model: keras.Model, current: keras.Model, iteration: int, block: int, levels: list[int], stage: str
    ) -> Candidate:
        """``model`` (``current`` with block ``block``, 0-based, cut) scored in float on the search split, from the
        cut block's input in ``current`` on."""
        stages, self.stages_before = self.stages_before, {}
        lap = Laps(stages)
        start = self.search_inputs.start(current, block)
        right = top1_classes(outputs_from(model, start.layer, start.chunks)) == self.reference
        lap("float score")
        candidate = Candidate(
            iteration=iteration,
            changed_block=block + 1,
            head=self.head,
            quantization="float32",
            latency_ms=None,
            size_bytes=None,
            stage=stage,
            screened=True,
            **self.scored(model, levels, right, stages),
        )
        self.candidates.append(candidate)
        return candidate

    def convert_screened(  # noqa: PLR0913 - the descent's state at this iteration
        self,
        screened: list[Shape],
        current: Shape,
        bar: float,
        deadline: float,
        iteration: int,
        target: float,
        stage: str,
    ) -> list[Shape]:
        """The screened shapes within ``bar``, best float top-1 first (then fewer MACs, or weights for size), each
        converted, scored and timed like an unscreened candidate, until one is within ``bar`` and an improvement
        on ``current`` (or time is up, after at least one)."""
        goal = self.options.goal
        within = [shape for shape in screened if shape.candidate.drop_pts <= bar]
        within.sort(
            key=lambda s: (-s.candidate.search_top1, s.candidate.macs if goal == "latency" else s.candidate.weights)
        )
        measured: list[Shape] = []
        for shape in within:
            if measured and self.out_of_time(deadline):
                break
            block = shape.candidate.changed_block
            candidate = self.measure(shape.model, iteration, block, shape.levels, self.head, current.timed, stage=stage)
            self.on_candidate(candidate, target)
            measured.append(Shape(candidate, shape.model, shape.kept, self.last_timed, shape.levels))
            if candidate.drop_pts <= bar and self.improves(candidate, current.candidate):
                break
        return measured
