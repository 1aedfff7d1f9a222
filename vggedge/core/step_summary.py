"""A recipe step's record as a person reads it in ``report.md``: a few labelled lines, a table of the widths a
filter cut changed, the fine-tune's loss as a short curve; the full record stays in ``report.json``."""

from __future__ import annotations

from collections.abc import Callable

from vggedge.core.convergence import flat, rose_at_end, stuck
from vggedge.core.formatting import fmt

SPARK = "▁▂▃▄▅▆▇█"
# Keys a labelled line (or the widths table) already shows, and keys that only repeat the recipe file
SHOWN = {
    "type", "filters", "loss_per_epoch", "inference_check", "equalization", "keep_float", "shared_with",
    "normalization_reestimated_on", "macs_before", "macs_after", "params", "float32_bytes", "layer_sparsity",
    "sparsity_reached", "nonzero_params", "train_agreement_with_source", "activation_ranges",
    "agreement_with_input", "removed_params", "loss_floor", "start_loss",
    "held_apart_loss_per_epoch", "best_epoch", "stopped_early", "stopped", "precision", "held_apart_loss_before",
}  # fmt: skip


def sparkline(values: list[float]) -> str:
    """The values as one line of block characters, low to high: the shape of a loss curve at a glance."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] for v in values)


def loss_line(losses: list[float], floor: float | None = None, start: float | None = None) -> str:
    """The fine-tune's loss first → last as a curve, flagged by the steps' own rules (rose, stuck, at its floor)."""
    began = f" (before training {start:.4g})" if start is not None else ""
    line = f"fine-tune: {len(losses)} epochs, loss {losses[0]:.4g} → {losses[-1]:.4g}{began} {sparkline(losses)}"
    rose, stuck_at = rose_at_end(losses), stuck(losses, floor)
    if rose:
        line += f" (rose at the end: {rose})"
    elif stuck_at:
        line += f" (flat and stuck: {stuck_at})"
    elif flat(losses):
        line += f" (flat at its floor {floor or 0:.4g}, the teacher's own entropy: converged from the start)"
    elif floor:
        line += f"; floor {floor:.4g} (the teacher's entropy)"
    return line


def check_line(check: dict) -> str:
    figures = ", ".join(
        f"{key.replace('_', ' ')} {value}" for key, value in check.items() if not isinstance(value, dict)
    )
    return f"inference-mode check: {figures}"


def equalization_line(eq: dict) -> str:
    before, after = eq.get("largest_channel_ratio_before"), eq.get("largest_channel_ratio_after")
    ratio = f", largest channel ratio {before} → {after}" if before is not None else ""
    return f"equalization: {eq.get('pairs', '—')} layer pairs, {eq.get('sweeps', '—')} sweeps{ratio}"


def fallback_line(record: dict) -> str:
    layers = record.get("float_layers") or []
    return f"kept in float: {', '.join(layers) if layers else 'no layer'}"


LABELLED: dict[str, Callable[[object], str]] = {
    "shared_with": lambda name: f"taken over from recipe `{name}` of this run (the same steps, the same seeds)",
    "loss_per_epoch": lambda losses: loss_line(list(losses)) if losses else "fine-tune: none",
    "inference_check": lambda check: check_line(check) if isinstance(check, dict) else f"inference-mode check: {check}",
    "normalization_reestimated_on": lambda n: f"normalization statistics re-estimated on {n} training images",
    "equalization": lambda eq: equalization_line(eq) if isinstance(eq, dict) else f"equalization: {eq}",
    "keep_float": lambda kf: fallback_line(kf) if isinstance(kf, dict) else f"keep float: {kf}",
    "held_apart_loss_per_epoch": lambda losses: f"loss on held-apart images per epoch: {' '.join(map(str, losses))}",
    "best_epoch": lambda epoch: (
        f"weights handed on: epoch {epoch}, the lowest held-apart loss"
        if epoch
        else "weights handed on: the starting (refitted) ones: no epoch beat their held-apart loss"
    ),
    "held_apart_loss_before": lambda loss: f"loss on held-apart images before the fine-tune: {loss}",
    "stopped": lambda reason: f"**stopped**: {reason}",
    "precision": lambda precision: f"trained in {precision}",
    "sparsity_reached": lambda s: f"sparsity reached: {s}",
    "train_agreement_with_source": lambda a: f"agreement with its source on the training images: {fmt(a, 'pct')}",
    "agreement_with_input": lambda a: f"agreement with its float input: {a}",
}


def settings_line(record: dict) -> str | None:
    """The step's own parameters (scalars, set values only): what the recipe asked for."""
    shown = [
        f"{key}={value}"
        for key, value in record.items()
        if key not in SHOWN and value is not None and not isinstance(value, dict) and not long_list(value)
    ]
    return ", ".join(shown) or None


def long_list(value: object) -> bool:
    """A list too long, or too nested, for the settings line (``block_ratios`` of five numbers is short)."""
    return isinstance(value, list) and (len(value) > 8 or any(isinstance(v, (list, dict)) for v in value))


def widths_table(filters: dict) -> list[str]:
    """Filters before → after per layer, for a step that cut them."""
    rows = [(name, pair) for name, pair in filters.items() if isinstance(pair, (list, tuple)) and len(pair) == 2]
    if not rows:
        return []
    lines = ["", "   | layer | filters before | after |", "   |---|---|---|"]
    lines += [f"   | {name} | {before} | {after} |" for name, (before, after) in rows]
    return lines + [""]


def step_markdown(index: int, record: dict) -> list[str]:
    """One step: its type and settings on the first line, then a line per thing it did or checked."""
    settings = settings_line(record)
    lines = [f"{index}. **{record.get('type', '?')}**" + (f" ({settings})" if settings else "")]
    if record.get("macs_before") and record.get("macs_after"):
        before, after = record["macs_before"], record["macs_after"]
        lines.append(f"   - MACs per image: {before / 1e6:.1f} M → {after / 1e6:.1f} M ({before / after:.2f}× fewer)")
    if record.get("params") is not None:
        lines.append(f"   - parameters after: {fmt(record['params'])}")
    for key, render in LABELLED.items():
        if key == "loss_per_epoch" and record.get(key):
            lines.append(f"   - {loss_line(list(record[key]), record.get('loss_floor'), record.get('start_loss'))}")
        elif record.get(key) is not None:
            lines.append(f"   - {render(record[key])}")
    lines += widths_table(record.get("filters") or {})
    more = sorted(
        key for key, value in record.items() if (isinstance(value, dict) or long_list(value)) and key not in SHOWN
    )
    if more:
        lines.append(f"   - also in report.json: {', '.join(more)}")
    return lines
