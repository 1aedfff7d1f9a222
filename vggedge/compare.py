"""``vggedge compare``: read reports from anywhere (recipes, devices) and put them in one table.

A report that cannot be read, or has another schema version, becomes a row with that status
instead of a crash. Writes ``compare.md``, ``compare.csv`` and a single-file ``compare.html`` whose
plots (size vs top-1, latency vs top-1, Pareto front marked) are embedded PNGs. Everything taken
from a report into HTML is escaped. No TensorFlow here; matplotlib is needed only for the HTML.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from vggedge.atomic import write_text
from vggedge.errors import UserError
from vggedge.formatting import fmt
from vggedge.report import Environment, Latency, Report


def cpu_label(environment: Environment) -> str | None:
    """'x86_64: avx2, avx512_vnni' (+ ', emulated'): what a latency depends on, per device. None in old reports."""
    if environment.cpu_features is None:
        return None
    features = ", ".join(environment.cpu_features) or "no listed speed features"
    return f"{environment.machine}: {features}" + (", emulated" if environment.emulated else "")


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
    ("agreement", "agreement"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("speedup", "speed-up"),
    ("source", "report"),
]


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


def rows_from_report(path: Path) -> tuple[dict | None, dict]:
    """(baseline row or None, result row) for one report file; unreadable files give an error row."""
    try:
        report = Report.load(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, {
            "recipe": Path(path).parent.name,
            "status": f"unreadable: {type(error).__name__}",
            "source": str(path),
        }
    except ValueError as error:  # another schema
        return None, {"recipe": Path(path).parent.name, "status": str(error), "source": str(path)}
    except (TypeError, KeyError, AttributeError) as error:
        return None, {"recipe": Path(path).parent.name, "status": f"broken report: {error}", "source": str(path)}
    env, b, r, x = report.environment, report.baseline, report.result, report.ratios
    latency = r.latency_ms or Latency()
    row = {
        "recipe": report.recipe.name,
        "device": env.device,
        "cpu": cpu_label(env),
        "runtime": f"{env.runtime} {env.runtime_version}",
        "status": r.status,
        "size_mb": _mb(r.size_bytes),
        "gzip_mb": _mb(r.gzip_bytes),
        "x_smaller": x.size,
        "top1": _round(r.top1),
        "delta_top1_pts": x.top1_delta_pts,
        "agreement": _round(r.agreement),
        "p50_ms": latency.p50,
        "p90_ms": latency.p90,
        "speedup": x.speedup,
        "source": str(path),
    }
    baseline = None
    if b.format:
        bl = b.latency_ms or Latency()
        baseline = {
            "recipe": "baseline (float32)",
            "device": b.device if b.device != "CPU" else f"{env.device} (CPU)",
            "cpu": cpu_label(env),
            "runtime": f"{b.format} / TF {env.tensorflow}" if report.kind != "device" else b.format,
            "status": "ok",
            "size_mb": _mb(b.size_bytes),
            "gzip_mb": None,
            "x_smaller": 1.0,
            "top1": _round(b.top1),
            "delta_top1_pts": 0.0 if b.top1 is not None else None,
            "agreement": 1.0 if b.top1 is not None else None,
            "p50_ms": bl.p50,
            "p90_ms": bl.p90,
            "speedup": 1.0,
            "source": str(path),
        }
    return baseline, row


def collect_rows(paths: list[Path]) -> list[dict]:
    """Baselines first (one per distinct baseline measurement), then one row per report."""
    baselines: dict[tuple, dict] = {}
    rows = []
    for path in find_reports(paths):
        baseline, row = rows_from_report(path)
        if baseline:
            key = (baseline["device"], baseline["size_mb"], baseline["top1"], baseline["p50_ms"])
            baselines.setdefault(key, baseline)
        rows.append({key: row.get(key) for key, _ in COLUMNS})
    return [{key: b.get(key) for key, _ in COLUMNS} for b in baselines.values()] + rows


def to_markdown(rows: list[dict]) -> str:
    header = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(fmt(row.get(key)).replace("|", "\\|") for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[key for key, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def pareto_front(points: list[tuple[float, float, int]]) -> set[int]:
    """Indices of points not dominated (lower x is better, higher y is better)."""
    front = set()
    for x, y, i in points:
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2, _ in points):
            front.add(i)
    return front


def plot_png(rows: list[dict], x_key: str, x_label: str) -> str | None:
    """A scatter of x against top-1 with the Pareto front marked, as base64 PNG (None when nothing to plot)."""
    points = [
        (row[x_key], row["top1"], i)
        for i, row in enumerate(rows)
        if row.get(x_key) is not None and row.get("top1") is not None
    ]
    if not points:
        return None
    try:
        import matplotlib
    except ImportError:  # a device install has no matplotlib: the page keeps its table
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(points)
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for x, y, i in points:
        on_front = i in front
        axis.scatter(x, y * 100, s=60 if on_front else 30, color="tab:red" if on_front else "tab:blue", zorder=3)
        axis.annotate(
            f"{rows[i]['recipe']} ({rows[i].get('device') or '?'})"[:40],
            (x, y * 100),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ordered = sorted((p for p in points if p[2] in front), key=lambda p: p[0])
    axis.plot([p[0] for p in ordered], [p[1] * 100 for p in ordered], "--", color="tab:red", label="Pareto front")
    axis.set_xscale("log")
    axis.set_xlabel(x_label)
    axis.set_ylabel("top-1 (%)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def to_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(row.get(key)))}</td>" for key, _ in COLUMNS) + "</tr>" for row in rows
    )
    plots = []
    for key, label in (("size_mb", "size (MB, log scale)"), ("p50_ms", "latency p50 (ms, log scale)")):
        png = plot_png(rows, key, label)
        if png:
            plots.append(
                f'<figure><img alt="{html.escape(label)} against top-1" src="data:image/png;base64,{png}">'
                f"<figcaption>{html.escape(label)} against top-1; red: Pareto front</figcaption></figure>"
            )
    if not plots:
        plots.append(
            "<p>No plots: no report has both top-1 and the plotted figure, or matplotlib is not installed.</p>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
        "figure{display:inline-block;margin:1em}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vggedge compare</title><style>{style}</style></head>"
        f"<body><h1>vggedge compare</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"{''.join(plots)}</body></html>\n"
    )


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*[label for _, label in COLUMNS if _ != "source"])
    for row in rows:
        table.add_row(*[fmt(row.get(key)) for key, _ in COLUMNS if key != "source"])
    Console().print(table)


def run_compare(paths: list[Path], fmt: str, out: Path | None) -> list[dict]:
    if fmt not in ("table", "md", "csv", "json"):
        raise UserError(f"--format must be table, md, csv or json. Received: {fmt!r}")
    rows = collect_rows(paths)
    if out is not None:
        try:
            write_text(Path(out) / "compare.md", to_markdown(rows))
            write_text(Path(out) / "compare.csv", to_csv(rows))
            write_text(Path(out) / "compare.html", to_html(rows))
        except OSError as error:
            raise UserError(f"cannot write to {out} ({error.strerror}): pass --out DIR to a writable folder") from None
    if fmt == "table":
        print_table(rows)
    else:
        print({"md": to_markdown, "csv": to_csv, "json": lambda r: json.dumps(r, indent=2)}[fmt](rows), end="")
    return rows
