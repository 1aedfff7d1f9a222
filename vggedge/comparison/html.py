"""``compare.html``: one self-contained page that answers "which recipe for my device and my budget?".

Top: the recommendation per device (smallest, fastest, most accurate within the budget). Then, per
device, size and latency against top-1 side by side (log x, percent y, the Pareto front drawn, status
by colour), with labels placed so that no two overlap: points at the same spot share one label, and
each label takes the first free spot around its point (a leader line when it had to move away).
Then the full table, sortable by any column, statuses in colour and word. Plots are embedded PNGs;
everything taken from a report is escaped. matplotlib is optional (a device install has none).
"""

from __future__ import annotations

import base64
import html
import io
import math

from vggedge.comparison.table import BASELINE, COLUMNS, Recommendation, cell

# anything else (failed_*, unreadable): red; a loose file benched without its source: grey
STATUS_COLOURS = {"ok": "#1a7f37", "over_budget": "#b35900", "not_verified": "#6e7781"}
FAILED_COLOUR = "#c62828"
# Offsets (points) tried in turn around a point for its label: close first, then farther (with a leader).
OFFSETS = [(6, 5), (6, -13), (-6, 5), (-6, -13), (0, 12), (0, -20)] + sorted(
    ((dx, dy) for dy in range(-220, 221, 8) for dx in (0, 16, -16, 40, -40, 80, -80, 130, -130)),
    key=lambda offset: math.hypot(*offset),
)


def status_colour(status: str | None) -> str:
    return STATUS_COLOURS.get(status or "", FAILED_COLOUR)


def pareto_front(points: list[tuple[float, float, int]]) -> set[int]:
    """Indices of points not dominated (lower x is better, higher y is better)."""
    front = set()
    for x, y, i in points:
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2, _ in points):
            front.add(i)
    return front


def clusters(points: list[tuple[float, float, str]]) -> list[tuple[float, float, list[str]]]:
    """Points that sit on one spot of a log-x plot (within 5% in x and 0.15 points in y) share a label."""
    groups: list[tuple[float, float, list[str]]] = []
    for x, y, name in sorted(points, key=lambda p: (-p[1], p[0])):
        for gx, gy, names in groups:
            if abs(math.log10(x) - math.log10(gx)) < 0.02 and abs(y - gy) < 0.15:
                names.append(name)
                break
        else:
            groups.append((x, y, [name]))
    return groups


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float], pad: float = 2.0) -> bool:
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1])


def scatter_png(rows: list[dict], x_key: str, x_label: str, title: str) -> tuple[str | None, list[tuple]]:
    """x against top-1 (%) as base64 PNG, and the pixel boxes of its labels (None, [] when nothing to plot)."""
    usable = [row for row in rows if row.get(x_key) and row.get("top1") is not None]
    if not usable:
        return None, []
    try:
        import matplotlib
    except ImportError:  # a device install has no matplotlib: the page keeps its table
        return None, []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(6.2, 4.4), dpi=110)
    points = [(row[x_key], row["top1"] * 100, i) for i, row in enumerate(usable)]
    front = pareto_front(points)
    for x, y, i in points:
        row = usable[i]
        baseline = row["recipe"] == BASELINE
        axis.scatter(
            x,
            y,
            s=70 if i in front else 40,
            marker="s" if baseline else "o",
            color="#444444" if baseline else status_colour(row.get("status")),
            edgecolors="#d62728" if i in front else "white",
            linewidths=2 if i in front else 0.8,
            zorder=3,
        )
    for row in usable:  # `--recipe auto`: the search's candidates, in the order it measured them
        trace = [c for c in row.get("search_trace") or [] if c.get(x_key) and c.get("top1") is not None]
        if trace:
            axis.plot(
                [c[x_key] for c in trace],
                [c["top1"] * 100 for c in trace],
                ".:",
                color="#7a7a7a",
                lw=0.8,
                ms=5,
                zorder=2,
                label=f"{row['recipe']}: search candidates (search split)",
            )
    ordered = sorted((p for p in points if p[2] in front), key=lambda p: p[0])
    axis.plot([p[0] for p in ordered], [p[1] for p in ordered], "--", color="#d62728", lw=1, label="Pareto front")
    axis.set_xscale("log")
    # Plain numbers (0.5, 2, 30), not 2×10⁻¹, and no minor-tick labels to collide with each other.
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel(x_label)
    axis.set_ylabel("top-1 (%)")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.margins(x=0.25, y=0.25)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    boxes = place_labels(figure, axis, clusters([(x, y, usable[i]["recipe"]) for x, y, i in points]))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode(), boxes


def place_labels(figure, axis, groups: list[tuple[float, float, list[str]]]) -> list[tuple]:  # noqa: ANN001
    """Annotate each group at the first offset where its label overlaps no other label and no point."""
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    to_pixels = axis.transData.transform
    taken = [(px - 5, py - 5, px + 5, py + 5) for px, py in (to_pixels((x, y)) for x, y, _ in groups)]
    inside = figure.bbox  # a label may sit in the margin, never off the picture
    placed = []
    for x, y, names in groups:
        text = ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:3])} +{len(names) - 3}"
        for dx, dy in OFFSETS:
            far = abs(dx) > 8 or abs(dy) > 20
            if far and abs(dx) < 16 and abs(dy) < 30:
                continue  # too close for a leader line to read, too far to be next to the point
            note = axis.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=8,
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.6} if far else None,
                zorder=4,
            )
            note.update_positions(renderer)  # where the words go for this offset
            extent = Text.get_window_extent(note, renderer)  # the words only (an Annotation adds its leader)
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            fits = inside.x0 <= box[0] and box[2] <= inside.x1 and inside.y0 <= box[1] and box[3] <= inside.y1
            if fits and not any(_overlaps(box, other) for other in taken):
                taken.append(box)
                placed.append(box)
                break
            note.remove()
    return placed


def recommendation_html(recommendations: list[Recommendation], budget: str) -> str:
    devices = list(dict.fromkeys(r.device for r in recommendations))
    blocks = []
    for device in devices:
        items = "".join(
            f"<li><b>{html.escape(r.goal)}</b>: "
            + (f"<code>{html.escape(r.recipe)}</code>" if r.recipe else "—")
            + f" <span class='figure'>({html.escape(r.figure)})</span></li>"
            for r in recommendations
            if r.device == device
        )
        blocks.append(f"<div class='rec'><h3>{html.escape(device)}</h3><ul>{items}</ul></div>")
    if not blocks:
        blocks.append("<p>No result to recommend.</p>")
    return f"<section><h2>Recommended, {html.escape(budget)}</h2><div class='recs'>{''.join(blocks)}</div></section>"


def plots_html(rows: list[dict]) -> str:
    devices = list(dict.fromkeys(row.get("device") or "?" for row in rows))
    sections = []
    for device in devices:
        mine = [row for row in rows if (row.get("device") or "?") == device]
        figures = []
        for key, label in (("size_mb", "size (MB, log scale)"), ("p50_ms", "latency p50 (ms, log scale)")):
            png, _ = scatter_png(mine, key, label, f"{label.split(' (')[0]} against top-1")
            if png:
                figures.append(
                    f'<figure><img alt="{html.escape(label)} against top-1 on {html.escape(device)}" '
                    f'src="data:image/png;base64,{png}"><figcaption>{html.escape(label)} against top-1. '
                    "Square: baseline; red ring and dashed line: Pareto front; colour: status; grey dots: an "
                    "automatic search's candidates, top-1 on its search split.</figcaption></figure>"
                )
        if figures:
            sections.append(f"<h3>{html.escape(device)}</h3><div class='plots'>{''.join(figures)}</div>")
    if not sections:
        return "<p>No plots: no report has both top-1 and the plotted figure, or matplotlib is not installed.</p>"
    return "<section><h2>Size, latency and accuracy</h2>" + "".join(sections) + "</section>"


def table_html(rows: list[dict]) -> str:
    head = "".join(f"<th onclick='sortBy(this)'>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            text = html.escape(cell(row, key))
            value = row.get(key)
            sort = html.escape(str(value)) if isinstance(value, int | float) else ""
            if key == "status":
                colour = status_colour(row.get("status"))
                cells.append(f"<td class='status' style='color:{colour}'>● {text}</td>")
            else:
                cells.append(f"<td data-sort='{sort}'>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<section><h2>All results <small>(click a heading to sort)</small></h2>"
        f"<table id='results'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}h1{margin-bottom:.2em}"
    ".recs{display:flex;flex-wrap:wrap;gap:1em}.rec{border:1px solid #ddd;border-radius:6px;padding:.3em 1em;"
    "background:#f8faf8}.rec h3{margin:.4em 0}.rec ul{padding-left:1.2em;margin:.3em 0}.figure{color:#555}"
    ".plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;flex:1 1 600px;max-width:760px}"
    "figure img{width:100%;height:auto}figcaption{font-size:12px;color:#555}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
    "th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}td.status{text-align:left;font-weight:600}"
)
SORT_SCRIPT = (
    "function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),"
    "b=t.tBodies[0],up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';"
    "const key=r=>{const c=r.children[i],s=c.dataset.sort;return s!==undefined&&s!==''?parseFloat(s):c.textContent};"
    "[...b.rows].sort((p,q)=>{const a=key(p),c=key(q);if(typeof a===typeof c)return (a>c?1:a<c?-1:0)*(up?1:-1);"
    "return typeof a==='number'?-1:1}).forEach(r=>b.appendChild(r))}"
)


def to_html(rows: list[dict], recommendations: list[Recommendation], budget: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vggedge compare</title>"
        f"<style>{STYLE}</style><script>{SORT_SCRIPT}</script></head><body><h1>vggedge compare</h1>"
        f"{recommendation_html(recommendations, budget)}{plots_html(rows)}{table_html(rows)}</body></html>\n"
    )
