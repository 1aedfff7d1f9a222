"""``vggedge compare``: many reports (recipes, devices) in one table, with a recommendation per device and goal.

TensorFlow-free: it runs on a board or a laptop. :mod:`~vggedge.comparison.table` reads reports into rows and
recommends; :mod:`~vggedge.comparison.html` draws the page. :func:`compare` returns a :class:`Comparison`.

>>> comparison = compare(["reports/"])                          # doctest: +SKIP
>>> [(r.device, r.goal, r.recipe) for r in comparison.recommendations]   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vggedge.comparison.table import (
    Recommendation,
    budget_sentence,
    collect_rows,
    print_table,
    recommend,
    to_csv,
    to_json,
    to_markdown,
)
from vggedge.core.atomic import write_text
from vggedge.core.errors import UserError
from vggedge.core.formatting import count

FORMATS = ("table", "md", "csv", "json")


def check_format(format: str) -> None:
    """Refuse a terminal format other than :data:`FORMATS` (one line, before any report is read)."""
    if format not in FORMATS:
        raise UserError(f"--format must be table, md, csv or json. Received: {format!r}")


@dataclasses.dataclass(frozen=True, repr=False)
class Comparison:
    """Rows (one per report, baselines of the same model, data and device merged) and the recommendations:
    per device and goal (smallest, fastest, most accurate), the best result within the accuracy budget."""

    rows: list[dict]
    recommendations: list[Recommendation]
    max_drop: float | None = None

    def __repr__(self) -> str:
        """Short: how many results on how many devices, and what is recommended (the rows stay in ``rows``)."""
        devices = sorted({str(row.get("device")) for row in self.rows if row.get("device")})
        picks = "; ".join(f"{r.goal}: {r.recipe or 'none'}" for r in self.recommendations[:3])
        results = sum(1 for row in self.rows if not str(row.get("recipe", "")).startswith("baseline"))
        return f"Comparison({count(results, 'result')}, {count(len(devices), 'device')}; {picks})"

    def _repr_html_(self) -> str:
        """A notebook's view: the recommendations as a list, then the main columns of every row as an HTML table."""
        import html

        lines = [f"<li>{html.escape(r.device)}: {html.escape(r.goal)}: <b>{html.escape(r.recipe or 'none')}</b> "
                 f"({html.escape(r.figure)})</li>" for r in self.recommendations]  # fmt: skip
        keys = ["recipe", "device", "status", "size_mb", "p50_ms", "top1", "delta_top1_pts", "speedup"]
        head = "".join(f"<th>{k}</th>" for k in keys)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(row.get(k, '')))}</td>" for k in keys) + "</tr>"
            for row in self.rows
        )
        return f"<ul>{''.join(lines)}</ul><table><tr>{head}</tr>{body}</table>"

    def to_markdown(self) -> str:
        return to_markdown(self.rows, self.recommendations, self.max_drop)

    def to_csv(self) -> str:
        return to_csv(self.rows)

    def to_json(self) -> str:
        return to_json(self.rows, self.recommendations)

    def to_html(self) -> str:
        from vggedge.comparison.html import to_html  # matplotlib: only when a page is asked for

        return to_html(self.rows, self.recommendations, budget_sentence(self.max_drop))

    def print(self, format: str = "table") -> None:
        """Print to stdout as a terminal table (80 columns), Markdown, CSV or JSON."""
        check_format(format)
        if format == "table":
            print_table(self.rows, self.recommendations, self.max_drop)
        else:
            text = {"md": self.to_markdown, "csv": self.to_csv, "json": lambda: self.to_json() + "\n"}[format]()
            print(text, end="")

    def save(self, folder: Path | str) -> list[Path]:
        """Write compare.md, compare.csv, compare.json and compare.html into ``folder`` (atomically, each)."""
        folder = Path(folder)
        files = {
            "compare.md": self.to_markdown,
            "compare.csv": self.to_csv,
            "compare.json": lambda: self.to_json() + "\n",
            "compare.html": self.to_html,
        }
        written = []
        try:
            for name, render in files.items():
                write_text(folder / name, render())
                written.append(folder / name)
        except OSError as error:
            raise UserError(
                f"cannot write to {folder} ({error.strerror}): pass --out DIR to a writable folder"
            ) from None
        return written


def compare(paths: list[Path | str] | Path | str, max_drop: float | None = None) -> Comparison:
    """Read every ``report.json`` under ``paths`` (files or folders, searched recursively) and recommend.

    ``max_drop``: the accuracy budget in top-1 points for the recommendations; ``None`` keeps each report's own.
    Raises :class:`vggedge.UserError` when a path holds no report."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if max_drop is not None and not 0.0 <= max_drop <= 100.0:
        raise UserError(f"max_drop must be between 0 and 100 top-1 points. Received: {max_drop}")
    rows = collect_rows([Path(p) for p in paths])
    return Comparison(rows, recommend(rows, max_drop), max_drop)


__all__ = ["Comparison", "Recommendation", "check_format", "compare"]
