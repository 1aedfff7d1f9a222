"""The search's rules and figures: width levels, fine-tune lengths, the validation rule (:func:`drop_bound`), the
search split's size, and the found shape as a recipe (:func:`recipe_for`).

The measurements behind the constants are in ``docs/guides/auto.md``."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

from vggedge.core.candidate import PASSED_BY_BOTH, PASSED_BY_BOUND
from vggedge.core.data import FileSplit, Split
from vggedge.core.errors import UserError
from vggedge.core.quantization import Quantization
from vggedge.models.anatomy import Anatomy
from vggedge.recipe.schema import FilterPruneStep, HeadStep, QuantizeStep, Recipe

Goal = Literal["latency", "size"]

# Fractions of a block's filters removed, level by level (keep 1, 7/8, ... 1/8): eighths, since the first cut of a
# block is the largest shock for the layers after it.
LEVELS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
# The found recipe's fine-tunes (filter-prune, then the GAP head): the shipped `fast` recipe's rates; its filter
# fine-tune's epochs as they were before `fast` became a cap of 20 (the validations fine-tune within the search's time).
FINAL_FILTER_EPOCHS = 6
FINAL_FILTER_RATE = 2e-4
FINAL_HEAD_EPOCHS = 20
FINAL_HEAD_RATE = 1e-3
# What the rule tests, on which images, at which confidence: the report's search section states it.
VALIDATION_STATISTICS = (
    "The paired top-1 drop against the baseline. On the search split (the descents ranked on it; no step trained "
    "on it): drop + 1 standard error within the budget passes (one-sided, about 84% confidence that the drop is "
    "within it). Where the search split is too small for that, a shape whose point drop is within the budget on "
    "the search split and on the held-apart images (the calibration split: no step trained on it; the fine-tune's "
    "plateau rule and the int8 calibration read it) passes too: two disjoint image sets both put it within the "
    "budget, which a shape whose true drop is at the budget does about one time in four. The evaluation images are "
    "never read by the search: the final verification and its interval decide the run's status, as for every recipe."
)


def validation_passes(drop_pts: float, bound_pts: float, held_apart_pts: float | None, budget: float) -> str | None:
    """Which rule passes a validated shape (:data:`PASSED_BY_BOUND`, :data:`PASSED_BY_BOTH`), or None: the drop plus
    one standard error within ``budget`` on the search split, or the point drop within it on both the search split and
    the held-apart images (a small search split makes one standard error larger than a small budget; a second image set
    that agrees is evidence the first alone cannot give). The exact figures: 1.004 is over 1 point."""
    within = budget + 1e-9
    if bound_pts <= within:
        return PASSED_BY_BOUND
    if held_apart_pts is not None and drop_pts <= within and held_apart_pts <= within:
        return PASSED_BY_BOTH
    return None


MIN_STEP = 0.02  # the smallest cut an iteration asks for, after halving the step when no block could meet it
# Tried on the found shape beside int8 (--goal latency), for CPUs without fast int8 kernels.
ALTERNATIVE_QUANTIZATIONS = (Quantization.FLOAT16, Quantization.DYNAMIC)
# An alternative replaces int8 (also the smallest file) only when measured this much faster side by side: a
# sub-millisecond model's interleaved timing is not exact to a few percent.
FINAL_QUANTIZATION_MARGIN = 1.05
# The stretch's bar, a multiple of --max-drop: the refit overstates the final drop, so the descent goes on past the
# budget; what it keeps is only proposed until a validation passes it.
STRETCH_FACTOR = 3.0
# A validated shape passes when drop + this many standard errors of the paired drop stays within --max-drop (the
# one-standard-error rule, Hastie et al., ESL 7.10): a shape that trades many images with the baseline needs room
# for them. The measurements that chose it: docs/guides/auto.md.
VALIDATION_STANDARD_ERRORS = 1.0
# The validations' time is planned before the descents start (validation_plan): enough for this many, a bisection
# over a path of up to seven shapes, at the cost estimated from the model; never less than MIN_VALIDATION_SHARE of
# --search-minutes (a descent that runs to the deadline still leaves time for one), never more than
# MAX_VALIDATION_SHARE (the descents need time to find anything to validate).
PLANNED_VALIDATIONS = 3
MIN_VALIDATION_SHARE = 1 / 3
MAX_VALIDATION_SHARE = 2 / 3
# A training image costs about this many forward passes (the backward pass about two more).
TRAINING_PASSES = 3


@dataclasses.dataclass(frozen=True)
class ValidationPlan:
    """How --search-minutes is split before the descents start: the seconds kept for the validations, from one
    validation's estimated cost (its fine-tunes from the float pass's seconds per image, then a conversion and a
    score, as the start's took)."""

    estimate_s: float  # one validation, estimated
    reserved_s: float  # kept for the validations: PLANNED_VALIDATIONS x estimate_s, within the shares' bounds
    total_s: float

    def describe(self) -> dict:
        return {
            "validation_estimate_s": round(self.estimate_s, 1),
            "planned_validations": PLANNED_VALIDATIONS,
            "reserved_s": round(self.reserved_s, 1),
            "fits": int(self.reserved_s // self.estimate_s) if self.estimate_s > 0 else None,
            "estimated_from": f"the baseline's float pass x {TRAINING_PASSES} per training image and epoch, the "
            "start's conversion and scoring",
        }


def validation_plan(
    total_s: float, forward_s_per_image: float, tune_images: int, epochs: int, convert_s: float, score_s: float
) -> ValidationPlan:
    """The time kept for the validations: :data:`PLANNED_VALIDATIONS` fine-tunes of ``epochs`` over ``tune_images``
    (each image ``TRAINING_PASSES`` forward passes of the baseline: a thinner shape trains faster, so this errs long),
    one forward pass for the GAP head's features, a conversion and a score each; within the shares of ``total_s``."""
    one = forward_s_per_image * tune_images * (TRAINING_PASSES * epochs + 1) + convert_s + score_s
    reserved = min(max(PLANNED_VALIDATIONS * one, MIN_VALIDATION_SHARE * total_s), MAX_VALIDATION_SHARE * total_s)
    return ValidationPlan(one, reserved, total_s)


# Screen candidates in float (the refitted Keras model on the search split) before converting any when converting
# the starting model took more than this many times scoring it in float: on a 224-pixel VGG16 with its flatten head
# a conversion took 14-15 s, most of a candidate (the 103M-weight fc1 alone converts in 10 s, its three 512-filter
# convs in 0.7 s), and five of ten candidates in a search lost more than the budget before any int8
SCREEN_FACTOR = 2.0
MIN_TIMING_S = 1.0  # every timing lasts at least this long: sub-millisecond calls need hundreds of samples
# --goal latency keeps the GAP head (the smaller file) unless measured slower than this fraction of the kept head's
# speed: the two differ only in the head, within the timing's resolution.
GAP_TIE_SPEED = 1 / FINAL_QUANTIZATION_MARGIN
# The carved search split: one image at most this share of --max-drop (400 images at 1 point), never below the
# floor, never more than half the training images (the refits train on the rest).
# Candidates' int8 calibration at full-size inputs: each calibration image costs a float forward pass inside the
# converter (at 224 px on 2 cores: 43 s to convert a candidate with 100 images, 18 s with 16; 13 s is fixed). The
# ranking needs the candidates calibrated alike, not finely: the found recipe is converted with the full set.
SEARCH_CALIBRATION_IMAGES = 16
SMALL_INPUT_PX = 64  # at or below this, calibration costs next to nothing: candidates use the run's full set


def search_calibration_count(input_px: int, available: int) -> int:
    """How many of the run's calibration images each candidate's int8 conversion uses."""
    return available if input_px <= SMALL_INPUT_PX else min(available, SEARCH_CALIBRATION_IMAGES)


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
    # --runtime: the runtime the board will run the model with (a distribution name, or litert); the candidates are
    # written, scored and timed in its format. None: TFLite, on the first installed TFLite runtime
    runtime: str | None = None
    time_on_token: str | None = dataclasses.field(default=None, repr=False)
    max_epochs: int | None = None  # --max-epochs: the GAP start's, the validations' and the found recipe's fine-tunes
    # --search-data: labelled images the baseline never trained on, ranked on instead of a split carved from the
    # training images (which a user's model has usually been trained on, so a thinner model's drop looks smaller)
    search_data: Path | None = None


def search_split_size(options: SearchOptions, train_images: int) -> int:
    """How many training images to carve for ranking: ``--search-images`` when given, else enough that one image is
    at most :data:`SEARCH_IMAGE_SHARE` of the budget (at least :data:`SEARCH_IMAGES_FLOOR`), and never more than
    half the training images: the refits and validations train on the rest. A small folder gets a split that
    cannot resolve the budget; the run says so (:func:`resolution_note`) instead of refusing."""
    if options.search_images is not None:
        return options.search_images
    fine = math.ceil(100.0 / (SEARCH_IMAGE_SHARE * options.max_drop_pts) - 1e-9)
    return min(max(SEARCH_IMAGES_FLOOR, fine), train_images // 2)


def resolution_note(images: int, max_drop_pts: float, carved: bool) -> str | None:
    """A note when one search image is more than half the budget: the validations cannot tell a shape within
    the budget from one past it, so the search returns the safer shapes; and what would resolve it."""
    per_image = 100.0 / max(1, images)
    if per_image <= max_drop_pts / 2:
        return None
    wanted = math.ceil(200.0 / max_drop_pts)
    more = "--search-data DIR, labelled images the model never trained on" if carved else "a larger --search-data"
    return (
        f"the search split's {images} images put one image at {per_image:.2f} points, more than half the "
        f"{max_drop_pts:g}-point budget: the search cannot resolve it, so it keeps to shapes that stay clear of it "
        f"(the starting shape when no validation can pass). About {wanted} search images would resolve it: "
        f"{more}, more images, or a larger --max-drop"
    )


def drop_bound(lost: int, gained: int, images: int) -> float:
    """The drop (points) plus :data:`VALIDATION_STANDARD_ERRORS` standard errors of it, from the paired counts on
    ``images`` search images: per image the shape scores -1 (lost), +1 (gained) or 0 against the baseline, and the
    drop's standard error is that variable's over the square root of ``images``. At least one disagreement (in the
    variance only): a shape that disagrees on none of 100 images may still disagree on about one image in 100
    elsewhere, and should not be read as exact."""
    if images <= 0:
        return math.inf
    drop = (lost - gained) / images
    second_moment = max(lost + gained, 1) / images
    error = math.sqrt(max(0.0, second_moment - drop**2) / images)
    return 100.0 * (drop + VALIDATION_STANDARD_ERRORS * error)


def search_source(options: SearchOptions) -> str:
    return f"--search-data {options.search_data}" if options.search_data else "carved from the training images"


def check_searchable(anatomy: Anatomy) -> None:
    if not anatomy.blocks or not any(anatomy.blocks):
        raise UserError(f"--recipe auto thins conv blocks, and {anatomy.name!r} has none to thin")


def recipe_for(block_ratios: list[float], head: str, quantization: Quantization, max_drop: float) -> Recipe:
    """The found shape as explicit steps, replayable with ``--recipe recipe.toml``, in the order the search built it:
    the GAP head first (the search's starting model), then the cut, refitted against that model as every candidate
    was, so the fine-tune starts from the weights the search scored and keeps them when no epoch beats them on the
    held-apart images (the refit is its epoch 0). Cut first, the refit had to fit fc1's 25,088 inputs from 64 images
    and the fine-tune trained the 100M-weight head the search had dropped."""
    steps: list = []
    if head == "gap":
        steps.append(HeadStep(train="distill", init="lstsq", epochs=FINAL_HEAD_EPOCHS, learning_rate=FINAL_HEAD_RATE))
    if any(block_ratios):
        steps.append(
            FilterPruneStep(
                block_ratios=block_ratios,
                refit=True,  # start the long fine-tune from the refitted shape, as the search measured it
                epochs=FINAL_FILTER_EPOCHS,
                learning_rate=FINAL_FILTER_RATE,
            )
        )
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


def carve(train: FileSplit | Split, count: int) -> tuple[Split, FileSplit | Split]:
    """(search split, the rest): the first ``count`` training images in their fixed checksum order."""
    if isinstance(train, FileSplit):
        return train.split_off(count)
    return train.first(count), Split(train.images[count:], train.labels[count:], train.keys[count:])
