"""The accuracy-aware end of a recipe: when its result misses verification or the budget, try the remedies that
can help, in a fixed order and within a time cap, and keep the first that ends ``ok``.

The order, cheapest and least intrusive first:

1. ``keep-float``: the int8 conversion again with its worst layers kept in float (``keep_float = "auto"``), on the
   stepped model the recipe already built. Tried only when the Keras model before conversion is itself within the
   budget: when the steps lost the accuracy, no conversion can bring it back (said so, not tried).
2. ``short-qat``: one epoch of quantization-aware fine-tuning of that same stepped model, then the full-integer
   conversion (the int8 ranges learned rather than calibrated), under the same condition.
3. ``post-training``: for a recipe that ends in quantization-aware training (``int8-qat``), the same recipe with
   post-training int8 instead: QAT fine-tunes the model it quantizes, and on a weak model that alone can move it
   (the real-photo VGG16 lost 9 points so, its int8 agreeing 100% with its moved Keras source).
4. ``gentler-cut``: the whole recipe again with every cut halved (``ratio`` 0.5 → 0.25, a prune step's ``sparsity``
   0.9 → 0.45): for recipes whose fine-tune could not recover from the cut (a weak or small-margin model),
   including a step stopped by its own checks.

Equalization is already on in every int8 recipe. Each try is recorded (status, top-1 change, verification, seconds)
in the report's ``remedies`` section; when one ends ``ok``, its model, recipe and figures become the run's and the
report says which remedy made them. When none does, the note says what was tried and names ``--recipe auto`` with
the budget as the next step; no note ever suggests a remedy the run already tried.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from vggedge.core.formats import TFLITE
from vggedge.core.progress import duration, log_line
from vggedge.core.report import STATUS_FAILED_EXPORT, STATUS_OK, ResultFigures
from vggedge.recipe.schema import Quantization, QuantizeStep, Recipe

SHORT_QAT_EPOCHS = 1


@dataclasses.dataclass
class Outcome:
    """One run of a recipe (as written, or a remedy's variant): what ``write_report`` needs."""

    recipe: Recipe
    records: list[dict]
    result: ResultFigures
    measured: object
    notes: list[str]
    folder: Path  # where its model.tflite was written
    seconds: float
    model: object = None  # the stepped Keras model (the keep-float remedy converts it again)


def source_drop_pts(result: ResultFigures, baseline_top1: float | None) -> float | None:
    """Top-1 points the recipe's Keras model (before conversion) lost against the baseline."""
    if result.source_top1 is None or baseline_top1 is None:
        return None
    return round((baseline_top1 - result.source_top1) * 100, 2)


def keep_float_plan(first: Outcome, baseline_top1: float | None) -> str | None:
    """Why the float fallback cannot help this run (None: it can, try it)."""
    recipe = first.recipe
    if recipe.quantization != Quantization.INT8:
        return f"the recipe ends in {recipe.quantization.value}, not full int8: nothing to keep in float"
    if recipe.keep_float is not None:
        return f"already in the recipe (keep_float = {recipe.keep_float!r})"
    return conversion_plan(first, baseline_top1)


def short_qat_plan(first: Outcome, baseline_top1: float | None) -> str | None:
    """Why a short quantization-aware fine-tune cannot help this run (None: try it)."""
    if first.recipe.quantization != Quantization.INT8:
        return f"the recipe ends in {first.recipe.quantization.value}, not calibrated full int8"
    return conversion_plan(first, baseline_top1)


def with_short_qat(recipe: Recipe) -> Recipe:
    """The recipe with its final int8 conversion replaced by a short quantization-aware fine-tune and conversion."""
    last = recipe.steps[-1]
    qat = QuantizeStep(mode="int8-qat", epochs=SHORT_QAT_EPOCHS, calibration_samples=last.calibration_samples)
    return recipe.model_copy(update={"steps": [*recipe.steps[:-1], qat]})


def with_post_training(recipe: Recipe) -> Recipe | None:
    """The recipe with its quantization-aware last step replaced by post-training int8 (None: it has none)."""
    last = recipe.steps[-1] if recipe.steps else None
    if not isinstance(last, QuantizeStep) or last.quantization != Quantization.INT8_QAT:
        return None
    int8 = QuantizeStep(mode="int8", calibration_samples=last.calibration_samples)
    return recipe.model_copy(update={"steps": [*recipe.steps[:-1], int8]})


def conversion_plan(first: Outcome, baseline_top1: float | None) -> str | None:
    """Why no change to the conversion alone can help (None: one can)."""
    if first.result.status == STATUS_FAILED_EXPORT:
        return "the recipe stopped before its conversion: no int8 model to fall back from"
    drop = source_drop_pts(first.result, baseline_top1)
    budget = first.result.accuracy_budget.max_drop_pts if first.result.accuracy_budget else None
    if drop is not None and budget is not None and drop > budget:
        return (
            f"the Keras model before conversion already lost {drop:.2f} points (budget {budget}): no change to the "
            "conversion can bring back what the steps lost"
        )
    return None


def _post_training_plan(first: Outcome, baseline_top1: float | None) -> str | None:
    return None if with_post_training(first.recipe) else "the recipe does not train its quantization"


def _gentler_cut_plan(first: Outcome, baseline_top1: float | None) -> str | None:
    return None if first.recipe.with_gentler_cut() else "the recipe cuts nothing (no filters, no sparsity)"


@dataclasses.dataclass(frozen=True)
class Remedy:
    """One remedy: its name (in reports and notes), the recipe variant it tries (None: it has none), why it cannot
    help a run (None: try it), its cost as a fraction of the first run's time, and whether it runs the variant from
    the start (else the stepped model is converted again)."""

    name: str
    variant: Callable[[Recipe], Recipe | None]
    why_not: Callable[[Outcome, float | None], str | None]
    cost: float
    rerun_whole: bool


# In the order they are tried (the module docstring says why)
REMEDIES = (
    Remedy("keep-float", lambda recipe: recipe.with_keep_float("auto"), keep_float_plan, 0.25, rerun_whole=False),
    Remedy(
        "short-qat",
        lambda recipe: with_short_qat(recipe) if recipe.quantization == Quantization.INT8 else None,
        short_qat_plan,
        0.5,
        rerun_whole=False,
    ),
    Remedy("post-training", with_post_training, _post_training_plan, 1.0, rerun_whole=True),
    Remedy("gentler-cut", lambda recipe: recipe.with_gentler_cut(), _gentler_cut_plan, 1.0, rerun_whole=True),
)


def attempt_record(name: str, outcome: Outcome | None, skipped: str | None, baseline_top1: float | None) -> dict:
    if outcome is None:
        return {"remedy": name, "status": "not tried", "why": skipped}
    change = outcome.result.top1_change
    verification = outcome.result.verification
    return {
        "remedy": name,
        "status": outcome.result.status,
        "top1_change_pts": change.delta_pts if change else None,
        "source_drop_pts": source_drop_pts(outcome.result, baseline_top1),
        "verification_agreement": verification.agreement if verification else None,
        "error": outcome.result.error,
        "seconds": round(outcome.seconds, 1),
    }


def try_remedies(
    first: Outcome,
    baseline_top1: float | None,
    minutes: float,
    convert_again: Callable[[Outcome, Recipe, str], Outcome],
    rerun: Callable[[Recipe, str], Outcome],
    progress: bool,
) -> tuple[Outcome, list[dict]]:
    """(the outcome to report, every remedy's record). ``convert_again(first, variant, name)`` applies the variant's
    last step to the stepped model and converts it; ``rerun(variant, name)`` runs a variant recipe from the start,
    each into its own folder."""
    started, tries = time.perf_counter(), []
    for remedy in REMEDIES:
        variant, skipped = remedy.variant(first.recipe), remedy.why_not(first, baseline_top1)
        name, left, needs = remedy.name, minutes * 60 - (time.perf_counter() - started), first.seconds * remedy.cost
        if skipped is None and needs > left:
            skipped = (
                f"the time cap ({minutes:g} min for remedies) leaves {duration(max(0, left))}, "
                f"this try takes ~{duration(needs)}"
            )
        if skipped is not None or variant is None:
            tries.append(attempt_record(name, None, skipped, baseline_top1))
            continue
        if progress:
            log_line(f"{first.recipe.name}: {first.result.status}; trying the {name} remedy")
        outcome = rerun(variant, name) if remedy.rerun_whole else convert_again(first, variant, name)
        tries.append(attempt_record(name, outcome, None, baseline_top1))
        if outcome.result.status == STATUS_OK:
            return outcome, tries
    return first, tries


def tried_note(tries: list[dict], chosen: str | None, recipe: Recipe, budget: float | None) -> str:
    """The one note about remedies: which made the result, or that none helped and what is next."""
    tried = [t for t in tries if t["status"] != "not tried"]
    described = "; ".join(
        f"{t['remedy']}: {t['status']}"
        + (f" ({t['top1_change_pts']:+.2f} pts)" if t.get("top1_change_pts") is not None else "")
        if t["status"] != "not tried"
        else f"{t['remedy']}: not tried ({t['why']})"
        for t in tries
    )
    if chosen is not None:
        return f"the recipe as written missed; the {chosen} remedy made this result ({described})"
    if not tried:
        return (
            f"no remedy could help ({described}). Next: --recipe auto --max-drop {budget} searches a shape within "
            "budget"
        )
    gentler = f", or a recipe that cuts less than {recipe.name!r}" if recipe.with_gentler_cut() else ""
    return (
        f"remedies tried, none within budget ({described}). Next: --recipe auto --max-drop {budget} searches a shape "
        f"that keeps its accuracy on this model{gentler}"
    )


def adopt(chosen: Outcome, first: Outcome) -> None:
    """Move the chosen remedy's model into the recipe's own folder and drop the scratch folders."""
    if chosen is not first:
        first.folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(chosen.folder / TFLITE.filename, first.folder / TFLITE.filename)


def scratch_folder(out: Path, recipe: Recipe, name: str) -> Path:
    """Where a remedy's variant is written before it is chosen or dropped (inside the run's output folder)."""
    return out / ".remedies" / recipe.name / name


def copied_records(outcome: Outcome) -> list[dict]:
    return copy.deepcopy(outcome.records)
