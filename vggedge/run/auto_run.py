"""``--recipe auto`` inside ``optimize``: carve the search split, search, then run the found recipe like any other."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from vggedge.core import defaults
from vggedge.core.atomic import write_text
from vggedge.core.data import load_all
from vggedge.core.errors import UserError
from vggedge.core.progress import duration, log_line
from vggedge.run.baseline import step_context
from vggedge.run.calibration import (
    calibration_images,
)
from vggedge.run.options import OptimizeOptions, Prepared
from vggedge.run.recipe_run import run_recipe


def run_auto(prepared: Prepared, options: OptimizeOptions) -> Path:
    """``--recipe auto``: search the shape on a split carved from the training images, then run the found
    recipe like any other (from the baseline, long fine-tunes, the whole training split) and report both."""
    from vggedge.auto.rules import VALIDATION_STANDARD_ERRORS, resolution_note, search_split_size
    from vggedge.auto.searcher import Searcher

    auto = dataclasses.replace(
        options.auto,
        max_epochs=options.max_epochs,  # the GAP start's, the validations' and the found recipe's fine-tunes
        search_images=search_split_size(options.auto, prepared.counts.train),
    )
    search_split, tune = search_and_tune_splits(prepared, auto, options.progress)
    budget_per_image = 100.0 / max(1, len(prepared.eval))
    if options.progress and budget_per_image > auto.max_drop_pts / 2:
        log_line(
            f"auto: one of the {len(prepared.eval)} evaluation images is {budget_per_image:.2f} points, more than half "
            f"the {auto.max_drop_pts}-point budget: the reported top-1 cannot resolve it (more --eval-samples can)"
        )
    unresolved = resolution_note(len(search_split), auto.max_drop_pts, carved=auto.search_data is None)
    if unresolved:  # in the report too: a user with a small folder learns why the shape is conservative
        prepared = dataclasses.replace(prepared, notes=[*prepared.notes, unresolved])
        if options.progress:
            log_line(f"auto: {unresolved}")
    started = time.perf_counter()

    def report_candidate(candidate, target: float) -> None:  # noqa: ANN001
        if not options.progress:
            return
        keep = " ".join(f"{1 - r:.3g}" for r in candidate.block_ratios)
        unit = "ms" if auto.goal == "latency" else "bytes"
        measured = (
            "screened in float (not converted)"
            if candidate.screened
            else f"{candidate.latency_ms:.2f} ms, {candidate.size_bytes / 1e6:.2f} MB"
        )
        log_line(
            f"auto: {'' if candidate.stage == 'search' else candidate.stage + ' '}candidate {len(searcher.candidates)} "
            f"(blocks keep {keep}, head {candidate.head}, {candidate.quantization}): {measured}, search top-1 "
            f"{candidate.search_top1:.1%} ({-candidate.drop_pts:+.2f} pts){validation_verdict(candidate)}; "
            f"target {target:.4g} {unit}; took {candidate.seconds:.0f} s ({stage_seconds(candidate.stages)}); "
            f"{duration(time.perf_counter() - started)} of {auto.minutes:g} min"
        )

    def validation_verdict(candidate) -> str:  # noqa: ANN001
        if candidate.passed is None:
            return ""
        verdict = "passes" if candidate.passed else "fails"
        held = candidate.held_apart_drop_pts
        held_apart = "" if held is None else f", held-apart {-held:+.2f} pts on {candidate.held_apart_images}"
        return f", drop + {VALIDATION_STANDARD_ERRORS:g} s.e. {candidate.drop_bound_pts:.2f} pts{held_apart}: {verdict}"

    calibration = calibration_images(prepared, defaults.CALIBRATION_SAMPLES)
    judged_on = prepared.dataset.calibration if len(prepared.dataset.calibration) else None
    prepared = checked_on_search_data(prepared, search_split, auto, options.progress)
    context = step_context(prepared, options)
    searcher = Searcher(
        prepared.baseline.model,
        *(search_split, tune, calibration, prepared.labels_match, auto, context),
        report_candidate,
        judged_on=judged_on,
    )
    try:
        found = searcher.run()
    except KeyboardInterrupt:
        keep_interrupted_trace(searcher, options)
        raise
    if options.progress:
        log_line(f"auto: searched {len(found.candidates)} candidates in {duration(found.seconds)} ({found.stopped})")
    (options.out / "auto" / INTERRUPTED_TRACE).unlink(missing_ok=True)  # an earlier run's, now out of date
    for note in (
        memorized_search_split(prepared, found.baseline_search_top1, auto),
        memorized_second_look(
            searcher.held_apart_right, searcher.judged_labels, found.baseline_search_top1, len(searcher.search), auto
        ),
    ):
        if note:
            if options.progress:
                log_line(f"auto: {note}")
            prepared = dataclasses.replace(prepared, notes=[*prepared.notes, note])
    unvalidated = unvalidated_note(found, auto, options)
    if unvalidated:
        if options.progress:
            log_line(f"auto: {unvalidated}")
        prepared = dataclasses.replace(prepared, notes=[*prepared.notes, unvalidated])
    if found.cut_short:  # --max-epochs, as for the fixed recipes (the note on the report)
        prepared = dataclasses.replace(prepared, cut_short=prepared.cut_short | {found.recipe.name})
    return run_recipe(found.recipe, prepared, options, search=found.describe(auto.goal, auto))


def checked_on_search_data(prepared: Prepared, search_split, auto, progress: bool) -> Prepared:  # noqa: ANN001
    """With ``--search-data``, the steps of the search, its validations and the found recipe check their fine-tunes
    (inference mode, how far under their input model, the plateau) on those images, which the baseline never
    trained on. The calibration split is carved from the training folder, which the baseline may have learned by
    heart: there a fine-tuned model looks far worse than the baseline because the baseline remembers those images
    (docs/guides/auto.md). The calibration split stays the validations' second look, a bias against the candidate."""
    if auto.search_data is None:
        return prepared
    note = (
        f"the steps checked their fine-tunes on the {len(search_split)} --search-data images (never trained on) "
        "instead of the calibration split"
    )
    if progress:
        log_line(f"auto: {note}")
    return dataclasses.replace(prepared, check_images=search_split, notes=[*prepared.notes, note])


def unvalidated_note(found, auto, options: OptimizeOptions) -> str | None:  # noqa: ANN001 - SearchResult, SearchOptions
    """When the search returned its starting shape though it measured faster ones within the budget: those shapes,
    their latency, and the command that gives their validations the time and images they need."""
    faster = found.faster_unvalidated(auto.max_drop_pts)
    if not faster:
        return None
    shapes = "; ".join(
        f"blocks keep {' '.join(f'{1 - r:g}' for r in c.block_ratios)}, head {c.head}: {c.latency_ms:.4g} ms "
        f"({found.best.latency_ms / c.latency_ms:.2f}x faster, a drop of {c.drop_pts:.2f} pts on the search split)"
        for c in faster
    )
    command = (
        f"vggedge optimize --recipe auto --model {options.model} --data {options.data} "
        f"--max-drop {auto.max_drop_pts:g} --search-minutes {max(2 * auto.minutes, auto.minutes + 10):g}"
        + ("" if auto.search_data else " --search-data DIR (labelled images the model never trained on)")
    )
    return (
        f"the search returned its starting shape ({found.chosen}), but measured faster shapes within the budget on "
        f"the search split that no validation confirmed: {shapes}. To validate them, give the search more time and "
        f"held-apart images: {command}"
    )


def stage_seconds(stages: dict[str, float]) -> str:
    """``refit 12.3 s, convert 4.1 s, ...``: where one candidate's time went, for its progress line."""
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stages.items())


def search_and_tune_splits(prepared: Prepared, auto, progress: bool) -> tuple:  # noqa: ANN001 - search.SearchOptions
    """(search split, images for the refits and validations): ``--search-data`` whole and every training image, or
    the first ``--search-images`` training images carved off and the rest."""
    from vggedge.auto.rules import carve

    if auto.search_data is None:
        return carve(prepared.dataset.train, auto.search_images)
    size = int(prepared.baseline.model.input_shape[1])
    names, split, _ = load_all(auto.search_data, size, progress=progress, resize=prepared.dataset.resize)
    if names != prepared.dataset.class_names:
        raise UserError(
            f"--search-data {auto.search_data} has the classes {names}, and --data {prepared.dataset.class_names}: "
            "give the same class folders"
        )
    return split, prepared.dataset.train


# The baseline scoring this much more (in points) on a carved search split than on the evaluation images: it has
# trained on the search images, where drops are understated.
MEMORIZED_GAP_PTS = 1.0


def memorized_search_split(prepared: Prepared, baseline_search_top1: float, auto) -> str | None:  # noqa: ANN001
    """A note when the search split is carved from images the baseline looks trained on: its top-1 there above its
    top-1 on the evaluation images by more than :data:`MEMORIZED_GAP_PTS` and the budget. (The baseline's own two
    figures; no candidate is judged on the evaluation images.)"""
    evaluated = prepared.figures.top1
    if auto.search_data is not None or evaluated is None:
        return None
    gap = (baseline_search_top1 - evaluated) * 100
    if gap <= max(MEMORIZED_GAP_PTS, auto.max_drop_pts):
        return None
    return (
        f"the baseline scores {baseline_search_top1:.2%} on the search split carved from the training images and "
        f"{evaluated:.2%} on the evaluation images: it may have trained on the search images, where a thinner "
        "model's drop looks smaller than it is; --search-data with images it never trained on ranks without that bias"
    )


def memorized_second_look(
    held_right: np.ndarray | None,
    held_labels: np.ndarray | None,
    baseline_search_top1: float,
    search_images: int,
    auto,  # noqa: ANN001 - AutoOptions
) -> str | None:
    """With ``--search-data``: a note when the validations' second look, the calibration split carved from the
    training images, is images the baseline looks trained on. Its top-1 there (``held_right``: right or not per image,
    against ``held_labels``) is above its top-1 on the search data by more than the budget and two standard errors of
    the difference of the two proportions. There every changed model loses what the baseline remembers, so that look
    can only refuse (on the real-photo benchmark it put a shape 14 points down that gained 1.3 on evaluation)."""
    if auto.search_data is None or held_right is None or held_labels is None or not len(held_right):
        return None
    held, searched = float(np.mean(held_right)), baseline_search_top1
    error = math.sqrt(held * (1 - held) / len(held_right) + searched * (1 - searched) / max(search_images, 1))
    gap = held - searched
    if gap * 100 <= auto.max_drop_pts or gap <= 2 * error:
        return None
    return (
        f"the baseline scores {held:.2%} on the {len(held_right)} calibration images carved from the training folder "
        f"(the validations' second look) and {searched:.2%} on the --search-data images: it looks trained on the "
        "calibration images, where every changed model loses what the baseline remembers, so that look can only "
        "refuse; a validation then passes by its drop plus one standard error on the search data alone (more "
        "--search-data images narrow it)"
    )


INTERRUPTED_TRACE = "search-incomplete.json"


def keep_interrupted_trace(searcher, options: OptimizeOptions) -> None:  # noqa: ANN001 - a search.Searcher
    """Ctrl-C during ``--recipe auto``'s search: no model and no report, but the candidates measured so far, in
    ``<out>/auto/search-incomplete.json`` (written atomically, marked ``complete: false``), so minutes of
    measurements are not lost. A run that finishes removes it."""
    if not searcher.candidates:
        return
    path = options.out / "auto" / INTERRUPTED_TRACE
    write_text(path, json.dumps(searcher.trace_so_far(), indent=1) + "\n")
    log_line(
        f"auto: interrupted after {len(searcher.candidates)} candidates; what they measured is in {path} "
        "(marked incomplete); no model or report was written"
    )
