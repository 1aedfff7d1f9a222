"""The report: one JSON document per recipe run (read by ``compare``) and its Markdown rendering.

Schema ``vggedge.report/1``. Accuracies are fractions in [0, 1]; a figure not measured is null,
never 0 and never invented. No TensorFlow here: ``bench`` writes the same reports on a device.
"""

from __future__ import annotations

import json
from pathlib import Path

from vggedge.atomic import write_text

REPORT_SCHEMA = "vggedge.report/1"
STATUS_OK = "ok"
STATUS_FAILED_VERIFICATION = "failed_verification"
STATUS_FAILED_EXPORT = "failed_export"


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


def _fmt(value: object, kind: str = "") -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "mb":
        return f"{value / 1e6:.2f} MB"
    if kind == "g":
        return f"{value / 1e9:.3f}"
    if kind == "ms":
        return f"{value:.2f} ms"
    if kind == "x":
        return f"{value:.2f}×"
    return str(value)


def render_markdown(report: dict) -> str:
    b, r, x = report["baseline"], report["result"], report["ratios"]
    env, recipe, model, data = report["environment"], report["recipe"], report["model"], report["dataset"]
    bl, rl = b.get("latency_ms") or {}, r.get("latency_ms") or {}
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
        f"| baseline ({b.get('format')}, {b.get('device')}) | {_fmt(b.get('size_bytes'), 'mb')} | — | {_fmt(b.get('flops'), 'g')} | "
        f"{_fmt(b.get('top1'), 'pct')} | {_fmt(b.get('top5'), 'pct')} | — | {_fmt(bl.get('p50'), 'ms')} | {_fmt(bl.get('p90'), 'ms')} |",
        f"| {recipe['name']} ({r.get('format')}) | {_fmt(r.get('size_bytes'), 'mb')} | {_fmt(r.get('gzip_bytes'), 'mb')} | {_fmt(r.get('flops'), 'g')} | "
        f"{_fmt(r.get('top1'), 'pct')} | {_fmt(r.get('top5'), 'pct')} | {_fmt(r.get('agreement'), 'pct')} | "
        f"{_fmt(rl.get('p50'), 'ms')} | {_fmt(rl.get('p90'), 'ms')} |",
        "",
        f"**{_fmt(x.get('size'), 'x')} smaller**, **{_fmt(x.get('speedup'), 'x')} speed-up**, "
        f"top-1 change {_fmt(x.get('top1_delta_pts'))} points.",
        "",
        f"Verification against the Keras source: top-1 agreement {_fmt(r.get('verification', {}).get('agreement'), 'pct')}, "
        f"max abs error {_fmt(r.get('max_abs_error'))} on {r.get('verification', {}).get('images', '—')} images.",
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
