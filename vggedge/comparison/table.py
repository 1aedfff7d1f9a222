"""``vggedge compare``: read reports from anywhere (recipes, devices), put them in one table, and answer
"which recipe for my device and my accuracy budget?".

A report that cannot be read, or has another schema version, becomes a row with that status instead
of a crash. Baselines of the same model, data and device are one row (their latency spread said, not
repeated). For each device, the recommendation names the smallest, the fastest and the most accurate
result within the accuracy budget (each report's own, or ``--max-drop``). Writes ``compare.md``,
``compare.csv``, ``compare.json`` and a single-file ``compare.html`` (see :mod:`vggedge.comparison.html`).
No TensorFlow here: a device compares too.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from vggedge.core.budget import BASELINE, within_budget
from vggedge.core.errors import UserError
from vggedge.core.formatting import fmt
from vggedge.core.report import STATUS_OK, Environment, Latency, Report
from vggedge.core.run_folder import incomplete_reason


def cpu_label(environment: Environment) -> str | None:
    """'x86_64: avx2, avx512_vnni' (+ ', emulated'): what a latency depends on, per device. None in old reports."""
    if environment.cpu_features is None:
        return None
    features = ", ".join(environment.cpu_features) or "no listed speed features"
    return f"{environment.machine}: {features}" + (", emulated" if environment.emulated else "")


# (key, header in md/csv/html). Fractions stay fractions in csv/json (for machines); people see percent.
COLUMNS = [
    ("recipe", "recipe"),
    ("device", "device"),
    ("cpu", "CPU (speed features)"),
    ("runtime", "runtime"),
    ("status", "status"),
    ("size_mb", "size MB"),
    ("gzip_mb", "gzip MB"),
    ("x_smaller", "× smaller"),
    ("top1", "top-1"),
    ("delta_top1_pts", "Δtop-1 pts"),
    ("budget_pts", "budget pts"),
    ("agreement", "agreement"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("speedup", "speed-up"),
    ("source", "report"),
]
PERCENT = {"top1", "agreement"}


def cell(row: dict, key: str) -> str:
    """A row's figure as a person reads it: percent for accuracies, "—" for not measured."""
    return fmt(row.get(key), "pct" if key in PERCENT else "")


def find_reports(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found.extend(sorted(path.rglob("report.json")))
        elif path.exists():
            found.append(path)
        else:
            raise UserError(f"{path} does not exist: pass report.json files or folders that contain them")
    if not found:
        raise UserError(
            f"no report.json under {', '.join(map(str, paths))}: run `vggedge optimize` or `vggedge bench` first"
        )
    return found


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / 1e6, 3)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _error_row(path: Path, status: str) -> dict:
    return {"recipe": Path(path).parent.name, "status": status, "source": str(path)}


def artifact_rows(report: Report, row: dict) -> list[dict]:
    """One more row per format the run wrote besides its TFLite model (``--formats``), named as ``bench`` names it
    (``int8-onnx``), with that file's own runtime, figures and status, against the same baseline."""
    b = report.baseline
    rows = []
    for artifact in report.artifacts[1:]:
        speedup = b.latency_ms.p50 / artifact.p50_ms if b.latency_ms and b.latency_ms.p50 and artifact.p50_ms else None
        smaller = b.size_bytes / artifact.size_bytes if b.size_bytes and artifact.size_bytes else None
        delta = (artifact.top1 - b.top1) * 100 if artifact.top1 is not None and b.top1 is not None else None
        rows.append({
            **row,
            "recipe": f"{row['recipe']}-{artifact.format}",
            "runtime": artifact.runtime,
            "status": artifact.status,
            "size_mb": _mb(artifact.size_bytes),
            "gzip_mb": None,
            "x_smaller": _round(smaller, 3),
            "top1": _round(artifact.top1),
            "delta_top1_pts": _round(delta, 2),
            "change_ci95_pts": None,
            "agreement": _round(artifact.agreement),
            "p50_ms": artifact.p50_ms,
            "p90_ms": None,
            "speedup": _round(speedup, 3),
        })  # fmt: skip
        rows[-1].pop("search_trace", None)
    return rows


def rows_from_report(path: Path) -> tuple[dict | None, dict]:
    """(baseline row or None, result row) for one report file; unreadable files and folders whose files are not
    the ones their run wrote (:mod:`vggedge.core.run_folder`) give an error row."""
    incomplete = incomplete_reason(Path(path).parent)
    if incomplete:
        return None, _error_row(path, f"incomplete: {incomplete}")
    try:
        report = Report.load(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, _error_row(path, f"unreadable: {type(error).__name__}")
    except ValueError as error:  # another schema
        return None, _error_row(path, str(error))
    except (TypeError, KeyError, AttributeError) as error:
        return None, _error_row(path, f"broken report: {error}")
    env, b, r, x = report.environment, report.baseline, report.result, report.ratios
    latency = r.latency_ms or Latency()
    identity = f"{report.model.source}|{report.dataset.name}|{report.dataset.eval_samples}"
    row = {
        "recipe": report.recipe.name,
        "device": env.device,
        "cpu": cpu_label(env),
        "runtime": f"{env.runtime} {env.runtime_version}",
        "threads": env.threads,
        "status": r.status,
        "size_mb": _mb(r.size_bytes),
        "gzip_mb": _mb(r.gzip_bytes),
        "x_smaller": x.size,
        "top1": _round(r.top1),
        "delta_top1_pts": x.top1_delta_pts,
        "change_ci95_pts": r.top1_change.ci95_pts if r.top1_change and r.top1_change.ci95_pts else None,
        "budget_pts": r.accuracy_budget.max_drop_pts if r.accuracy_budget else None,
        "agreement": _round(r.agreement),
        "p50_ms": latency.p50,
        "p90_ms": latency.p90,
        "speedup": x.speedup,
        "source": str(path),
        "model": identity,
    }
    if report.search and report.search.get("candidates"):
        # `--recipe auto`'s candidates (search-split top-1, timed during the search): compare.html draws them.
        row["search_trace"] = [
            {"p50_ms": c.get("latency_ms"), "size_mb": _mb(c.get("size_bytes")), "top1": c.get("search_top1")}
            for c in report.search["candidates"]
        ]
    if not b.format:
        return None, row
    bl = b.latency_ms or Latency()
    baseline = {
        "recipe": BASELINE,
        # On the CPU the baseline ran on the report's own device (one plot, one recommendation block);
        # on a GPU it is a device of its own.
        "device": env.device if b.device in (None, "CPU") else b.device,
        "cpu": cpu_label(env),
        "runtime": f"{b.format} / TF {env.tensorflow} ({b.device or '?'})" if report.kind != "device" else b.format,
        "status": STATUS_OK,
        "size_mb": _mb(b.size_bytes),
        "gzip_mb": None,
        "x_smaller": 1.0,
        "top1": _round(b.top1),
        "delta_top1_pts": 0.0 if b.top1 is not None else None,
        "budget_pts": None,
        "agreement": 1.0 if b.top1 is not None else None,
        "p50_ms": bl.p50,
        "p90_ms": bl.p90,
        "speedup": 1.0,
        "source": str(path),
        "model": identity,
    }
    if report.search and report.search.get("candidates"):
        # `--recipe auto`'s candidates (search-split top-1, timed during the search): compare.html draws them.
        row["search_trace"] = [
            {"p50_ms": c.get("latency_ms"), "size_mb": _mb(c.get("size_bytes")), "top1": c.get("search_top1")}
            for c in report.search["candidates"]
        ]
    return baseline, row


def merge_baselines(baselines: list[dict]) -> list[dict]:
    """One row per baseline of the same model, data, device and runtime: the median latency, and the
    spread over the runs said in the row's source instead of repeating near-identical rows."""
    groups: dict[tuple, list[dict]] = {}
    for row in baselines:
        groups.setdefault((row["model"], row["device"], row["runtime"], row["size_mb"]), []).append(row)
    merged = []
    for rows in groups.values():
        first = dict(rows[0])
        latencies = [r["p50_ms"] for r in rows if r["p50_ms"] is not None]
        if len(rows) > 1:
            first["p50_ms"] = round(statistics.median(latencies), 3) if latencies else None
            p90s = [r["p90_ms"] for r in rows if r["p90_ms"] is not None]
            first["p90_ms"] = round(statistics.median(p90s), 3) if p90s else None
            spread = f"; p50 {min(latencies):.2f}–{max(latencies):.2f} ms" if latencies else ""
            first["source"] = f"{len(rows)} reports{spread}"
        merged.append(first)
    return merged


def collect_rows(paths: list[Path]) -> list[dict]:
    """Baselines first (one per model, data, device and runtime), then one row per report."""
    baselines, rows = [], []
    for path in find_reports(paths):
        baseline, row = rows_from_report(path)
        if baseline:
            baselines.append(baseline)
        rows.append(row)
        if "model" in row:  # a report read whole (an error row has no model): its other formats, a row each
            rows += artifact_rows(Report.load(path), row)
    tell_devices_apart(baselines + rows)
    return merge_baselines(baselines) + rows


def tell_devices_apart(rows: list[dict]) -> None:
    """Two machines under one label (both called ``vm``, say) are two devices: each such row's device gets its CPU
    and speed features added, so no baseline is averaged and no result ranked across machines."""
    machines: dict[str, set] = {}
    for row in rows:
        if row.get("device") is not None:
            machines.setdefault(row["device"], set()).add(row.get("cpu"))
    for row in rows:
        label = row.get("device")
        if label is not None and len(machines[label]) > 1:
            row["device"] = f"{label} ({row.get('cpu') or 'CPU not recorded'})"


@dataclass
class Recommendation:
    device: str
    goal: str  # "smallest", "fastest", "most accurate"
    recipe: str | None  # None: no result within the budget on this device
    figure: str  # the figure that decided it, as a person reads it


# (goal, figure, +1: lower is better / -1: higher is better, how the figure is said)
GOALS = (
    ("smallest", "size_mb", 1, lambda row: fmt(row["size_mb"], ".2f") + " MB"),
    ("fastest", "p50_ms", 1, lambda row: "p50 " + fmt(row["p50_ms"], ".2f") + " ms"),
    ("most accurate", "top1", -1, lambda row: "top-1 " + fmt(row["top1"], "pct")),
)


def recommend(rows: list[dict], max_drop: float | None = None) -> list[Recommendation]:
    """Per device, the recipe that best meets each goal among the results within the accuracy budget."""
    devices = list(dict.fromkeys(row.get("device") or "?" for row in rows if row.get("recipe") != BASELINE))
    found = []
    for device in devices:
        eligible = [row for row in rows if (row.get("device") or "?") == device and within_budget(row, max_drop)]
        for goal, key, sign, describe in GOALS:
            measured = [row for row in eligible if row.get(key) is not None]
            if not measured:
                found.append(Recommendation(device, goal, None, "no result within the budget measured it"))
                continue
            # A tie (two results with the same top-1, say) goes to the smaller file.
            choice = min(measured, key=lambda row, key=key, sign=sign: (sign * row[key], row.get("size_mb") or 0))
            figure = describe(choice)
            if goal == "most accurate":
                figure += tie_note(choice, measured)
            found.append(Recommendation(device, goal, with_threads(choice, eligible), figure))
    return found


def with_threads(choice: dict, rows: list[dict]) -> str:
    """The recipe's name, and its thread count when the same recipe was benched at several on this device."""
    counts = {row.get("threads") for row in rows if row["recipe"] == choice["recipe"]}
    if len(counts) < 2:
        return choice["recipe"]
    threads = choice.get("threads")
    return f"{choice['recipe']} at {threads} thread{'' if threads == 1 else 's'}"


def intervals_overlap(a: list[float] | None, b: list[float] | None) -> bool:
    return bool(a and b) and a[0] <= b[1] and b[0] <= a[1]


def tie_note(choice: dict, rows: list[dict]) -> str:
    """``; a tie with gap, int8 (95% intervals overlap)``: results whose top-1 change against the same baseline
    cannot be told apart from the most accurate one's on these images."""
    tied = [
        row["recipe"]
        for row in rows
        if row is not choice
        and row.get("model") == choice.get("model")
        and intervals_overlap(row.get("change_ci95_pts"), choice.get("change_ci95_pts"))
    ]
    if not tied:
        return ""
    shown = ", ".join(tied[:3]) + (f" and {len(tied) - 3} more" if len(tied) > 3 else "")
    return f"; a tie with {shown} (95% intervals overlap)"


def budget_sentence(max_drop: float | None) -> str:
    if max_drop is not None:
        return f"within {max_drop} top-1 points of the baseline (--max-drop)"
    return "within each report's accuracy budget, verified"


def to_markdown(rows: list[dict], recommendations: list[Recommendation], max_drop: float | None = None) -> str:
    lines = [f"## Recommended ({budget_sentence(max_drop)})", ""]
    lines += ["| device | goal | recipe | figure |", "|---|---|---|---|"]
    lines += [f"| {r.device} | {r.goal} | {r.recipe or '—'} | {r.figure} |" for r in recommendations]
    lines += ["", "## All results", ""]
    lines.append("| " + " | ".join(label for _, label in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(cell(row, key).replace("|", "\\|") for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[key for key, _ in COLUMNS], lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(rows: list[dict], recommendations: list[Recommendation]) -> str:
    return json.dumps(
        {
            "recommendations": [asdict(r) for r in recommendations],
            "rows": [{key: row.get(key) for key, _ in COLUMNS} for row in rows],
        },
        indent=2,
    )


TERMINAL_LEGEND = (
    "MB: model file; ×small, ×fast: against the float32 baseline (size, p50 latency); Δ pts: top-1 change "
    "in points. Full table: --out DIR (compare.md/csv/html) or --format md."
)


def print_table(rows: list[dict], recommendations: list[Recommendation], max_drop: float | None = None) -> None:
    """The terminal view: readable at 80 columns (short headers, a legend, devices named once)."""
    console = Console()
    devices = list(dict.fromkeys(row.get("device") or "?" for row in rows))
    # One space of padding between columns, every cell at its natural width, the legend below as text.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("recipe", no_wrap=True, min_width=max(len(row.get("recipe") or "?") for row in rows))
    if len(devices) > 1:
        table.add_column("dev", no_wrap=True)
    table.add_column("status", overflow="fold")
    for header in ("MB", "×small", "top-1", "Δ pts", "p50 ms", "×fast"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    for row in rows:
        cells = [row.get("recipe") or "?"]
        if len(devices) > 1:
            cells.append(str(devices.index(row.get("device") or "?") + 1))
        cells += [
            row.get("status") or "?",
            fmt(row.get("size_mb"), ".2f"),
            fmt(row.get("x_smaller"), "ratio"),
            cell(row, "top1"),
            fmt(row.get("delta_top1_pts"), "+.2f"),
            fmt(row.get("p50_ms"), ".2f"),
            fmt(row.get("speedup"), "ratio"),
        ]
        table.add_row(*cells)
    for number, device in enumerate(devices, start=1):
        cpu = next((row.get("cpu") for row in rows if (row.get("device") or "?") == device and row.get("cpu")), None)
        prefix = f"dev {number}: " if len(devices) > 1 else "device: "
        # Folded at the width like every line here: a CPU with many listed features (AMX, VNNI, ...) is long.
        console.print(f"{prefix}{device}" + (f" ({cpu})" if cpu else ""), highlight=False)
    console.print(table)
    console.print(TERMINAL_LEGEND, highlight=False)
    console.print(f"Recommended, {budget_sentence(max_drop)}:", highlight=False)
    for r in recommendations:
        where = f"{r.device}, " if len(devices) > 1 else ""
        console.print(f"  {where}{r.goal}: {r.recipe or '—'} ({r.figure})", highlight=False)
