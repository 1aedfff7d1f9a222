"""The report: one JSON document per recipe run (read by ``compare``) and its Markdown rendering.

Schema ``vggedge.report/1``. Accuracies are fractions in [0, 1]; a figure not measured is null,
never 0 and never invented. No TensorFlow here: ``bench`` writes the same reports on a device.
"""

from __future__ import annotations

import json
from pathlib import Path

from vggedge.atomic import write_text
from vggedge.formatting import fmt

REPORT_SCHEMA = "vggedge.report/1"
# A result's status. "ok" is a promise: exported, verified against its Keras source, and within the
# accuracy budget. The others say which promise broke.
STATUS_OK = "ok"
STATUS_OVER_BUDGET = "over_budget"  # verified, but top-1 fell more than the budget allows
STATUS_FAILED_VERIFICATION = "failed_verification"  # the TFLite model disagrees with its Keras source
STATUS_FAILED_EXPORT = "failed_export"  # a step or the conversion failed: no model


def dataset_section(
    name: str | None,
    classes: int | None,
    eval_samples: int,
    train_samples: int = 0,
    calibration_samples: int = 0,
    skipped: int = 0,
    eval_source: str | None = None,
) -> dict:
    """The report's ``dataset`` section, built here only (optimize, bench and sizes-only runs alike)."""
    return {
        "name": name,
        "classes": classes,
        "train_samples": train_samples,
        "eval_samples": eval_samples,
        "calibration_samples": calibration_samples,
        "skipped": skipped,
        "eval_source": eval_source,
    }


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return round(numerator / denominator, digits)


def compute_ratios(baseline: dict, result: dict) -> dict:
    """× smaller, × faster (p50 against p50) and the top-1 change in points, against the baseline."""
    top1_delta = None
    if baseline.get("top1") is not None and result.get("top1") is not None:
        top1_delta = round((result["top1"] - baseline["top1"]) * 100, 2)
    return {
        "size": ratio(baseline.get("size_bytes"), result.get("size_bytes")),
        "speedup": ratio((baseline.get("latency_ms") or {}).get("p50"), (result.get("latency_ms") or {}).get("p50")),
        "top1_delta_pts": top1_delta,
    }


def build_report(
    recipe: dict, model: dict, dataset: dict, environment: dict, baseline: dict, result: dict, notes: list[str]
) -> dict:
    return {
        "schema": REPORT_SCHEMA,
        "recipe": recipe,
        "model": model,
        "dataset": dataset,
        "environment": environment,
        "baseline": baseline,
        "result": result,
        "ratios": compute_ratios(baseline, result),
        "notes": notes,
    }


def write_report(report: dict, folder: Path) -> Path:
    folder = Path(folder)
    write_text(folder / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(folder / "report.md", render_markdown(report))
    return folder / "report.json"


def render_markdown(report: dict) -> str:
    b, r, x = report["baseline"], report["result"], report["ratios"]
    env, recipe, model, data = report["environment"], report["recipe"], report["model"], report["dataset"]
    bl, rl = b.get("latency_ms") or {}, r.get("latency_ms") or {}
    verification = r.get("verification") or {}
    lines = [
        f"# vggedge report: `{recipe['name']}`",
        "",
        f"Status: **{r['status']}**. Model: {model['source']} ({model.get('params', '—')} params, "
        f"input {model.get('input_shape')}, {model.get('classes')} classes). "
        f"Data: {data.get('name')} ({data.get('eval_samples')} eval, {data.get('calibration_samples')} calibration, "
        f"{data.get('skipped')} skipped).",
        "",
        "| | size | gzip | GFLOPs | top-1 | top-5 | agreement | p50 | p90 |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| baseline ({b.get('format')}, {b.get('device')}) | {fmt(b.get('size_bytes'), 'mb')} | — | "
        f"{fmt(b.get('flops'), 'g')} | {fmt(b.get('top1'), 'pct')} | {fmt(b.get('top5'), 'pct')} | — | "
        f"{fmt(bl.get('p50'), 'ms')} | {fmt(bl.get('p90'), 'ms')} |",
        f"| {recipe['name']} ({r.get('format')}) | {fmt(r.get('size_bytes'), 'mb')} | "
        f"{fmt(r.get('gzip_bytes'), 'mb')} | {fmt(r.get('flops'), 'g')} | {fmt(r.get('top1'), 'pct')} | "
        f"{fmt(r.get('top5'), 'pct')} | {fmt(r.get('agreement'), 'pct')} | "
        f"{fmt(rl.get('p50'), 'ms')} | {fmt(rl.get('p90'), 'ms')} |",
        "",
        f"**{fmt(x.get('size'), 'x')} smaller**, **{fmt(x.get('speedup'), 'x')} speed-up**, "
        f"top-1 change {fmt(x.get('top1_delta_pts'))} points.",
        "",
        f"Verification against the Keras source: top-1 agreement {fmt(verification.get('agreement'), 'pct')}, "
        f"max abs error {fmt(r.get('max_abs_error'))} on {verification.get('images', '—')} images.",
        "",
        "## Steps",
        "",
    ]
    for i, step in enumerate(recipe.get("steps", []), start=1):
        details = ", ".join(f"{k}={v}" for k, v in step.items() if k not in ("type", "layer_sparsity"))
        lines.append(f"{i}. `{step.get('type')}`: {details}")
    lines += ["", "## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"
