"""The report: one JSON document per recipe run (read by ``compare``) and its Markdown rendering.

Schema ``vggedge.report/1``. The report is a tree of small stdlib dataclasses, written and read by one
path (:meth:`Report.to_dict` / :meth:`Report.from_dict`), so ``optimize``, ``bench``, ``compare`` and the
terminal summary cannot disagree on a key. Accuracies are fractions in [0, 1]; a figure not measured is
null, never 0 and never invented. No TensorFlow here, no pydantic: ``bench`` writes the same reports on a
device with only the standard library and numpy.

Readers are lenient the way JSON readers of an evolving format must be: a key a report lacks reads as
its default (null), a key this version does not know is ignored. Keys are only ever added, as nullable
fields, within ``/1``; renaming or removing one is a new schema version.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vggedge.core.atomic import write_text
from vggedge.core.candidate import PASSED_BY_BOTH, Candidate
from vggedge.core.formatting import fmt
from vggedge.core.step_summary import step_markdown

REPORT_SCHEMA = "vggedge.report/1"
# A result's status. "ok" is a promise: exported, verified against its Keras source, and within the
# accuracy budget. The others say which promise broke.
STATUS_OK = "ok"
STATUS_OVER_BUDGET = "over_budget"  # verified, but top-1 fell more than the budget allows
STATUS_FAILED_VERIFICATION = "failed_verification"  # the TFLite model disagrees with its Keras source
STATUS_FAILED_EXPORT = "failed_export"  # a step or the conversion failed: no model
# `bench` of a loose .tflite (no optimize report beside it): there was no Keras source to verify it against.
STATUS_NOT_VERIFIED = "not_verified"
# Statuses as terminal tables show them: `failed_verification` at full length pushed a table past 80 columns
# and cut its figures (the reports keep the full words).
SHORT_STATUS = {
    STATUS_FAILED_VERIFICATION: "unverified",
    STATUS_FAILED_EXPORT: "no export",
    STATUS_OVER_BUDGET: "over budget",
    STATUS_NOT_VERIFIED: "no source",
}


@dataclass
class Latency:
    """Per-image latency at batch 1: median and 90th percentile of ``runs`` timed invocations, in ms."""

    p50: float | None = None
    p90: float | None = None
    runs: int = 0


@dataclass
class Verification:
    """How the TFLite model agreed with the Keras model it came from (its own source, not the baseline)."""

    images: int = 0
    agreement: float | None = None
    min_agreement: float | None = None
    gated: bool = False  # False: random weights, nothing to agree on, so not held to min_agreement


@dataclass
class AccuracyBudget:
    max_drop_pts: float | None = None
    source: str | None = None  # "--max-drop", "recipe" or "default"


@dataclass
class DatasetSection:
    """What the figures were measured on. Built only here (optimize, bench and sizes-only runs alike)."""

    name: str | None = None
    classes: int | None = None
    train_samples: int = 0
    eval_samples: int = 0
    calibration_samples: int = 0
    skipped: int = 0
    eval_source: str | None = None
    resize: str | None = None  # how images were fitted to the input: stretch, center-crop or letterbox


@dataclass
class Training:
    """Where the fine-tuning steps ran (``vggedge.backend.distribute``): strategy, replicas, and the rules that
    scale batch and learning rate with them (null on one device, where nothing is scaled)."""

    strategy: str | None = None
    replicas: int | None = None
    workers: int | None = None
    devices: list[str] = field(default_factory=list)
    batch_rule: str | None = None
    learning_rate_rule: str | None = None


@dataclass
class RecipeSection:
    name: str = ""
    description: str = ""
    quantization: str | None = None
    seed: int | None = None
    steps: list[dict] = field(default_factory=list)  # each step's own record (type + parameters + what it did)
    training: Training | None = None  # null for device reports and reports written before it existed


@dataclass
class ModelSection:
    source: str = ""
    weights: str | None = None
    input_shape: list[int] = field(default_factory=list)
    classes: int | None = None
    params: int | None = None
    preprocess: str | None = None
    anatomy: dict | None = None
    # A PyTorch or ONNX source: its framework, file, layout, and the check of the translation against it
    translation: dict | None = None


@dataclass
class DeviceCheck:
    """The board's state around a device benchmark: what makes the same file fast or slow on a Pi.

    Read by ``vggedge.device.check`` before and after the timed runs. Every field is null where the OS does
    not tell it (a PC has no ``vcgencmd``, a container no thermal zone). ``warnings`` are the conditions that
    make the figure unrepresentative, each with its fix in words.
    """

    board: str | None = None  # /proc/device-tree/model, e.g. "Raspberry Pi 5 Model B Rev 1.0"
    cpu_part: str | None = None  # e.g. "Cortex-A76 (0xd0b)"
    kernel_machine: str | None = None  # uname -m: what the kernel runs
    userland_bits: int | None = None  # this Python's pointer width: what the userland runs
    governor: str | None = None
    freq_mhz_before: float | None = None
    freq_mhz_after: float | None = None
    freq_max_mhz: float | None = None
    temperature_c_before: float | None = None
    temperature_c_after: float | None = None
    throttled_before: str | None = None  # `vcgencmd get_throttled`, e.g. "0x50005"
    throttled_after: str | None = None
    throttled_now: list[str] = field(default_factory=list)  # bits 0-3 after the runs
    throttled_during: list[str] = field(default_factory=list)  # sticky bits 16-19 that appeared during the runs
    throttled_since_boot: list[str] = field(default_factory=list)
    mem_available_mb: float | None = None
    mem_needed_mb: float | None = None  # about twice the model file (XNNPACK packs the weights again)
    swap_used_mb_before: float | None = None
    swap_used_mb_after: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Environment:
    """The machine and software every figure depends on (a latency means nothing without its CPU)."""

    device: str | None = None
    cpu: str | None = None
    cpu_features: list[str] | None = None
    cpu_mhz: float | None = None
    cores: int | None = None
    machine: str | None = None
    emulated: str | None = None
    os: str | None = None
    python: str | None = None
    tensorflow: str | None = None
    vggedge: str | None = None  # the vggedge that made the report
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    gpu: str | None = None
    device_check: DeviceCheck | None = None  # `bench` only: the board's state around the timed runs


@dataclass
class BaselineFigures:
    """The float32 Keras model every result is measured against (or, for a loose .tflite, nothing)."""

    format: str | None = None
    device: str | None = None
    size_bytes: int | None = None
    flops: int | None = None
    top1: float | None = None
    top5: float | None = None
    latency_ms: Latency | None = None


@dataclass
class Top1Change:
    """How sure the top-1 change is, on the evaluation images both models saw (vggedge.core.metrics.paired_change).

    ``ci95_pts``: a paired bootstrap 95% interval of the change in points (resampling images, both models'
    answers on an image kept together); ``mcnemar_p``: McNemar's exact test on the images where exactly one
    of the two is right (``baseline_only``, ``result_only``). An interval that holds 0 is no measured change."""

    delta_pts: float | None = None
    ci95_pts: list[float] = field(default_factory=list)
    mcnemar_p: float | None = None
    baseline_only: int = 0
    result_only: int = 0
    images: int = 0
    resamples: int = 0


@dataclass
class ResultFigures:
    """One recipe's TFLite model, measured. Fields not measured stay null."""

    status: str = STATUS_OK
    format: str | None = None
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    top1: float | None = None
    top5: float | None = None
    latency_ms: Latency | None = None
    # `bench`: the first runs after a cool-down (latency_ms is then the sustained figure, after time under load)
    burst_latency_ms: Latency | None = None
    agreement: float | None = None  # top-1 agreement with the baseline, image by image
    max_abs_error: float | None = None
    verification: Verification | None = None
    flops: int | None = None
    accuracy_budget: AccuracyBudget | None = None
    timing: dict[str, float | None] | None = None  # seconds (and peak memory) per phase of the run
    error: str | None = None  # failed_export: the exception, one line
    top1_change: Top1Change | None = None  # against the baseline, with its 95% interval (null: no labels)
    # Integer results: each conv/dense layer's int8 error against float32, worst first (vggedge.export.layer_error).
    layer_error: list[dict] | None = None
    # top-1 of the recipe's Keras model before conversion: what the steps kept, apart from what conversion lost
    source_top1: float | None = None


@dataclass
class Ratios:
    size: float | None = None  # × smaller
    speedup: float | None = None  # p50 against p50
    top1_delta_pts: float | None = None


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return round(numerator / denominator, digits)


def compute_ratios(baseline: BaselineFigures, result: ResultFigures) -> Ratios:
    """× smaller, × faster (p50 against p50) and the top-1 change in points, against the baseline."""
    top1_delta = None
    if baseline.top1 is not None and result.top1 is not None:
        top1_delta = round((result.top1 - baseline.top1) * 100, 2)
    return Ratios(
        size=ratio(baseline.size_bytes, result.size_bytes),
        speedup=ratio(
            baseline.latency_ms.p50 if baseline.latency_ms else None,
            result.latency_ms.p50 if result.latency_ms else None,
        ),
        top1_delta_pts=top1_delta,
    )


@dataclass
class Artifact:
    """One model file a run wrote (``--formats``), verified against the Keras source like the TFLite one: its
    format and precision, what ran it here, its size, top-1, agreement with the source and with the baseline,
    its p50 on this machine and its own status (``error``: why it has none)."""

    format: str  # vggedge.core.formats: tflite, onnx
    file: str  # its name in the run folder
    precision: str  # int8, float32, float16, dynamic-range int8
    status: str
    runtime: str | None = None  # e.g. "onnxruntime 1.32.0"
    size_bytes: int | None = None
    top1: float | None = None
    verification_agreement: float | None = None  # with its Keras source, on the evaluation images
    agreement: float | None = None  # with the baseline
    p50_ms: float | None = None
    error: str | None = None
    float_layers: list[str] = field(default_factory=list)  # an int8 file's layers kept in float (keep-float)


@dataclass
class Report:
    recipe: RecipeSection
    model: ModelSection
    dataset: DatasetSection
    environment: Environment
    baseline: BaselineFigures
    result: ResultFigures
    notes: list[str] = field(default_factory=list)
    kind: str | None = None  # "device" for `vggedge bench`; null for `optimize`
    search: dict | None = None  # `--recipe auto`: every candidate measured, the Pareto front (vggedge.auto.searcher)
    # The accuracy-aware end: each remedy tried (or not, and why) after the recipe as written missed (run.remedies)
    remedies: list[dict] | None = None
    # Every model file the run wrote, the TFLite first (``--formats``); empty in reports before formats
    artifacts: list[Artifact] = field(default_factory=list)
    ratios: Ratios = field(init=False)  # derived from baseline and result; a stored value is never read
    schema: str = REPORT_SCHEMA

    def __post_init__(self) -> None:
        self.ratios = compute_ratios(self.baseline, self.result)  # derived, never stored independently

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        schema = data.pop("schema")
        return {"schema": schema, **data}

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """Read a report dict; raises ``ValueError`` for another schema, ``TypeError`` for a malformed one."""
        if not isinstance(data, dict):
            raise TypeError(f"a report is a JSON object, not {type(data).__name__}")
        if data.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"unknown schema {data.get('schema')!r}")
        return _build(cls, data)

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def write(self, folder: Path) -> Path:
        """``report.json`` and ``report.md`` in ``folder`` (each written atomically); returns the JSON path."""
        folder = Path(folder)
        write_text(folder / "report.json", json.dumps(self.to_dict(), indent=2) + "\n")
        write_text(folder / "report.md", render_markdown(self))
        return folder / "report.json"


def _build(kind: Any, value: Any) -> Any:  # noqa: ANN401 - a JSON value typed by the dataclass field
    """A JSON value as ``kind`` (a dataclass, ``X | None``, ``list[...]`` or a plain type)."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _build(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise TypeError(f"{kind.__name__} must be an object, not {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        fields = [f for f in dataclasses.fields(kind) if f.init]
        required = [f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in value]
        if missing:
            raise TypeError(f"missing {', '.join(missing)}")
        known = {f.name for f in fields}
        return kind(**{name: _build(hints[name], v) for name, v in value.items() if name in known})
    if origin is list and not isinstance(value, list):
        raise TypeError(f"expected a list, not {type(value).__name__}")
    if origin is list and typing.get_args(kind):
        return [_build(typing.get_args(kind)[0], item) for item in value]
    return value


def status_meaning(result: ResultFigures, verification: Verification) -> list[str]:
    """What the status was judged against, said in the report itself (the budget and the verification bar)."""
    budget = result.accuracy_budget
    bar = fmt(verification.min_agreement, "pct")
    allowed = "—"
    if budget and budget.max_drop_pts is not None:
        allowed = f"{fmt(budget.max_drop_pts)} point{'' if budget.max_drop_pts == 1 else 's'} ({budget.source})"
    lines = [
        f"`ok` means: the TFLite model agrees with its Keras source on at least {bar} of the evaluation images "
        f"(verified), and its top-1 is at most {allowed} below the baseline's (the accuracy budget)."
    ]
    if result.status == STATUS_OK:
        lines[0] += (
            " Next: copy `model.tflite` and `labels.txt` to the board and run `vggedge bench model.tflite` there "
            "(`--data` with the evaluation images adds accuracy and agreement)."
        )
    return [*lines, ""]


def latency_provenance(env: Environment, result: ResultFigures) -> list[str]:
    """Where the latencies were measured: a workstation is not the board the model is for."""
    if env.device_check is not None:  # `bench`: on the board itself
        return []
    where = env.cpu or env.machine or "this machine"
    runtime = f"{env.runtime} {env.runtime_version}" if env.runtime else "the TFLite interpreter"
    return [
        f"Latencies were measured on the machine that ran `optimize` ({where}, {runtime}, "
        f"{fmt(env.threads)} thread{'' if env.threads == 1 else 's'}), not on a device: `vggedge bench` measures "
        "them on the board.",
        "",
    ]


def artifacts_markdown(artifacts: list[Artifact]) -> list[str]:
    """Every format the run wrote, one row each, when it wrote more than the TFLite model."""
    if len(artifacts) < 2:
        return []
    lines = [
        "## Artifacts",
        "",
        "Each file verified against the same Keras source on the same evaluation images, and timed here one after "
        "the other with its own runtime:",
        "",
        "| file | format | precision | runtime | size | top-1 | agreement with source | p50 | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in artifacts:
        status = f"{a.status} ({a.error})" if a.error else a.status
        precision = f"{a.precision}, float: {', '.join(a.float_layers)}" if a.float_layers else a.precision
        lines.append(
            f"| {a.file} | {a.format} | {precision} | {a.runtime or '—'} | {fmt(a.size_bytes, 'mb')} | "
            f"{fmt(a.top1, 'pct')} | {fmt(a.verification_agreement, 'pct')} | {fmt(a.p50_ms, 'ms')} | {status} |"
        )
    return [*lines, ""]


def translation_lines(translation: dict | None) -> list[str]:
    """The report's line on a model translated from PyTorch or ONNX: from what, and how it was checked."""
    if not translation:
        return []
    evaluation = translation.get("evaluation")
    on_evaluation = (
        f" On the {evaluation['images']} evaluation images: largest difference "
        f"{evaluation['max_score_difference']:.2g}, top-1 agreement {fmt(evaluation['top1_agreement'], 'pct')}."
        if evaluation
        else ""
    )
    return [
        f"Translated from {translation['framework']} ({translation['layout']}), blocks {translation['blocks']}; "
        f"checked against {translation['verified_against']} on {translation['images']} probe images: largest "
        f"class-score difference {translation['max_score_difference']:.2g}, top-1 agreement "
        f"{fmt(translation['top1_agreement'], 'pct')}.{on_evaluation}",
        "",
    ]


def render_markdown(report: Report) -> str:
    b, r, x = report.baseline, report.result, report.ratios
    env, recipe, model, data = report.environment, report.recipe, report.model, report.dataset
    bl, rl = b.latency_ms or Latency(), r.latency_ms or Latency()
    verification = r.verification or Verification()
    lines = [
        f"# vggedge report: `{recipe.name}`",
        "",
        f"Status: **{r.status}**. Model: {model.source} ({fmt(model.params)} params, "
        f"input {model.input_shape}, {model.classes} classes). "
        f"Data: {data.name} ({data.eval_samples} eval, {data.calibration_samples} calibration, "
        f"{data.skipped} skipped{', resized by ' + data.resize if data.resize else ''}).",
        "",
        "| | size | gzip | GFLOPs | top-1 | top-5 | agreement | p50 | p90 |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| baseline ({b.format}, {b.device}) | {fmt(b.size_bytes, 'mb')} | — | "
        f"{fmt(b.flops, 'g')} | {fmt(b.top1, 'pct')} | {fmt(b.top5, 'pct')} | — | "
        f"{fmt(bl.p50, 'ms')} | {fmt(bl.p90, 'ms')} |",
        f"| {recipe.name} ({r.format}) | {fmt(r.size_bytes, 'mb')} | "
        f"{fmt(r.gzip_bytes, 'mb')} | {fmt(r.flops, 'g')} | {fmt(r.top1, 'pct')} | "
        f"{fmt(r.top5, 'pct')} | {fmt(r.agreement, 'pct')} | "
        f"{fmt(rl.p50, 'ms')} | {fmt(rl.p90, 'ms')} |",
        "",
        f"**{fmt(x.size, 'x')} smaller**, **{fmt(x.speedup, 'x')} speed-up**, "
        f"top-1 change {fmt(x.top1_delta_pts)} points{change_interval(r.top1_change)}.",
        "",
        f"Verification against the Keras source: top-1 agreement {fmt(verification.agreement, 'pct')}, "
        f"max abs error {fmt(r.max_abs_error)} on {verification.images or '—'} images.",
        "",
        *translation_lines(model.translation),
        *status_meaning(r, verification),
        *latency_provenance(env, r),
        *artifacts_markdown(report.artifacts),
        "## Steps",
        "",
    ]
    for i, step in enumerate(recipe.steps, start=1):
        lines += step_markdown(i, step)
    if (
        recipe.training
        and recipe.training.strategy
        and ((recipe.training.replicas or 1) > 1 or (recipe.training.workers or 1) > 1)
    ):
        t = recipe.training
        rules = f"; {t.batch_rule}; {t.learning_rate_rule}" if t.batch_rule else ""
        lines += ["", f"Fine-tuning ran on {t.strategy}: {t.replicas} replica(s), {t.workers} worker(s){rules}."]
    lines += ["", "## Environment", ""]
    lines += [
        f"- {key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else fmt(value)}"
        for key, value in dataclasses.asdict(env).items()
        if key != "device_check" and value not in (None, [])
    ]
    if env.device_check:
        lines += device_check_markdown(env.device_check)
    if r.timing:
        lines += ["", "## Timing", ""] + [f"- {key}: {value}" for key, value in r.timing.items()]
    if r.layer_error:
        lines += layer_error_markdown(r.layer_error, every=r.status != STATUS_OK)
    if report.search:
        lines += search_markdown(report.search)
    if report.remedies:
        lines += remedies_markdown(report.remedies)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def remedies_markdown(tries: list[dict]) -> list[str]:
    """What the run tried after the recipe as written missed, in the order tried."""
    lines = ["", "## Remedies", "", "| remedy | status | top-1 change | source drop | verification | seconds |"]
    lines.append("|---|---|---|---|---|---|")
    for t in tries:
        if t.get("status") == "not tried":
            lines.append(f"| {t['remedy']} | not tried: {t.get('why')} | | | | |")
            continue
        lines.append(
            f"| {t['remedy']} | {t['status']} | {fmt(t.get('top1_change_pts'))} | {fmt(t.get('source_drop_pts'))} | "
            f"{fmt(t.get('verification_agreement'), 'pct')} | {t.get('seconds')} |"
        )
    return lines


def device_check_markdown(check: DeviceCheck) -> list[str]:
    """The board's state around the runs; its warnings first, since they qualify every figure above."""
    lines = ["", "## Device check", ""]
    lines += [f"- ⚠ {warning}" for warning in check.warnings] or ["- no condition found that spoils the figure"]
    figures = dataclasses.asdict(check).items()
    lines += [f"- {key}: {value}" for key, value in figures if key != "warnings" and value not in (None, [])]
    return lines


LAYER_ROWS_WHEN_OK = 5


def layer_error_markdown(rows: list[dict], every: bool) -> list[str]:
    """The per-layer int8 error table, worst first: every layer when the result is not ok, else the worst few."""
    shown = rows if every else rows[:LAYER_ROWS_WHEN_OK]
    lines = [
        "",
        "## int8 error per layer",
        "",
        f"Worst first{'' if every else f' ({len(shown)} of {len(rows)}; all in report.json)'}: each conv/dense "
        "layer's own error (its int8 output against float32 applied to its own int8 input), in output "
        "quantization steps (pure rounding: 0.29) and as the median channel's SQNR; the accumulated SQNR "
        "against the float model; the median channel's share of the output range (near 0: one channel takes "
        "the range, which cross-layer equalization fixes).",
        "",
        "| layer | own SQNR dB | RMSE (steps) | accumulated SQNR dB | output range | median channel share |",
        "|---|---|---|---|---|---|",
    ]
    for row in shown:
        low, high = row.get("range") or (None, None)
        flag = " ⚠" if row.get("weak") else (" (after a broken layer)" if row.get("after_broken") else "")
        lines.append(
            f"| {row['part']} · {row['layer']}{flag} | {fmt(row.get('own_sqnr_db'))} | "
            f"{fmt(row.get('rmse_in_scales'))} | {fmt(row.get('sqnr_db'))} | {fmt(low)} to {fmt(high)} | "
            f"{fmt(row.get('median_channel_share'))} |"
        )
    return lines


def change_interval(change: Top1Change | None) -> str:
    """`` (95% interval −0.83 to +0.28, McNemar p = 0.62 on 4 + 1 images)`` for the report's headline."""
    if change is None or not change.ci95_pts:
        return ""
    low, high = change.ci95_pts
    return (
        f" (95% interval {low:+.2f} to {high:+.2f}, McNemar p = {change.mcnemar_p:.3g} on "
        f"{change.baseline_only} + {change.result_only} images only one of the two got right)"
    )


def stretch_markdown(stretch: dict | None, validation: dict | None) -> list[str]:
    """One paragraph on the stretch past the budget and the validations (absent from older reports; reports of
    0.2's first auto versions kept the validations under ``stretch``)."""
    if not stretch:
        return []
    lines = [
        "",
        f"Stretch: past the budget under a {stretch.get('bar_pts')}-point bar on the search split (stopped: "
        f"{stretch.get('stopped')}).",
    ]
    if validation:
        lines[-1] += (
            f" Validations along the path: {validation.get('validations')}, each with "
            f"{validation.get('validated_with')}; a shape passes when {validation.get('rule')}. Returned: "
            f"{validation.get('chosen')}."
        )
        lines += time_split_markdown(validation.get("time"))
    elif "validations" in stretch:
        lines[-1] += f" {stretch.get('validations')} of its shapes validated with {stretch.get('validated_with')}."
    return lines


def time_split_markdown(split: dict | None) -> list[str]:
    """How the search's time was split (absent from reports before the validations' time was planned)."""
    if not split:
        return []
    return [
        "",
        f"Time: the descents took {split.get('descents_s')} s and the validations {split.get('validations_s')} s; "
        f"{split.get('reserved_s')} s were kept for the validations before the descents began "
        f"({split.get('planned_validations')} planned at about {split.get('validation_estimate_s')} s each, "
        f"estimated from {split.get('estimated_from')}).",
    ]


def search_markdown(search: dict) -> list[str]:
    """The automatic search's trace: every candidate, the ones kept marked, the Pareto front starred."""
    images = search.get("images", {})
    lines = [
        "",
        "## Automatic search",
        "",
        f"Goal: {search.get('goal')} within {search.get('max_drop_pts')} points; {search.get('seconds')} s, "
        f"stopped: {search.get('stopped')}. Ranked on {images.get('search')} search images "
        f"({search.get('search_from', 'carved from the training images')}; "
        f"baseline {fmt(search.get('baseline_search_top1'), 'pct')} there); layers refitted "
        f"after each cut on {images.get('reconstruction')} training images; latency from {search.get('latency_from')}.",
        *stretch_markdown(search.get("stretch"), search.get("validation")),
        "",
        "| # | stage | iteration | block | kept per block | head · format | p50 ms | × vs current | size "
        "| search top-1 | Δ pts | lost · gained | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    front = set(search.get("pareto", []))
    for i, record in enumerate(search.get("candidates", [])):
        c = Candidate.from_record(record)
        keep = " ".join(f"{1 - r:.3g}" for r in c.block_ratios or [])
        verdict = {True: " passed", False: " failed"}.get(c.passed, "")
        if c.held_apart_drop_pts is not None:  # the second image set a validation is judged on
            verdict += f" (held-apart {0.0 - c.held_apart_drop_pts:+.2f} on {c.held_apart_images})"
        if c.passed_by == PASSED_BY_BOTH:
            verdict += ", both within the budget"
        mark = ("kept" if c.kept else "") + verdict + (" ★" if i in front else "")
        mark += " screened in float" if c.screened else ""
        counts = f"{c.lost} · {c.gained}" if "lost" in record else "—"  # not counted before 0.2's validations
        change = None if c.drop_pts is None else 0.0 - c.drop_pts  # no "-0.00" for no change
        lines.append(
            f"| {i} | {c.stage} | {c.iteration} | {c.changed_block or '—'} | {keep} | {c.head} · {c.quantization} | "
            f"{fmt(c.latency_ms, 'ms')} | {fmt(c.speedup, '.2f')} | {fmt(c.size_bytes, 'mb')} | "
            f"{fmt(c.search_top1, 'pct')} | {fmt(change, '+.2f')} | {counts} | {mark.strip()} |"
        )
    return lines
