"""What ``vggedge.optimize`` and ``vggedge.search`` return: one recipe's run folder and its typed report."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from vggedge.core.formats import TFLITE
from vggedge.core.formatting import fmt
from vggedge.core.report import STATUS_OK, Report


@dataclasses.dataclass(frozen=True)
class Result:
    """One recipe's outcome. ``ok`` is a promise: verified against its Keras source and within the accuracy
    budget. Every file of the run is in ``folder`` (``model.tflite``, ``recipe.toml``, ``report.json``,
    ``report.md``, ``labels.txt``); ``report`` is the typed :class:`~vggedge.core.report.Report`."""

    folder: Path
    report: Report

    @classmethod
    def load(cls, folder: Path | str) -> Result:
        """The result of an earlier run, from its folder (or its ``report.json``)."""
        path = Path(folder)
        folder = path.parent if path.name == "report.json" else path
        return cls(folder, Report.load(folder / "report.json"))

    @property
    def recipe(self) -> str:
        return self.report.recipe.name

    @property
    def status(self) -> str:
        """``ok``, ``over_budget``, ``failed_verification`` or ``failed_export``."""
        return self.report.result.status

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def model_path(self) -> Path | None:
        """The TFLite model, or None when the export failed."""
        path = self.folder / TFLITE.filename
        return path if path.is_file() else None

    @property
    def remedies(self) -> list[dict]:
        """What the run tried after the recipe as written missed (each remedy, its status or why not tried);
        empty when it needed none or remedies were off."""
        return list(self.report.remedies or [])

    @property
    def remedy(self) -> str | None:
        """The remedy that made this result, or None (the recipe as written, or nothing helped)."""
        return next((t["remedy"] for t in self.remedies if t.get("status") == "ok"), None)

    @property
    def size_mb(self) -> float | None:
        """The model file's size in MB (10^6 bytes), or None when the export failed."""
        size = self.report.result.size_bytes
        return None if size is None else size / 1e6

    @property
    def p50_ms(self) -> float | None:
        """Median batch-1 latency of the TFLite model where it was measured (see ``report.environment``)."""
        latency = self.report.result.latency_ms
        return None if latency is None else latency.p50

    @property
    def top1(self) -> float | None:
        """Top-1 accuracy on the evaluation images, a fraction (None without labelled data)."""
        return self.report.result.top1

    @property
    def top1_change(self) -> float | None:
        """Top-1 change against the float32 baseline, in points (negative: it lost accuracy)."""
        return self.report.ratios.top1_delta_pts

    @property
    def speedup(self) -> float | None:
        """Baseline p50 / this model's p50, both measured here, side by side."""
        return self.report.ratios.speedup

    @property
    def smaller(self) -> float | None:
        """How many times smaller than the float32 baseline's weights."""
        return self.report.ratios.size

    def _repr_html_(self) -> str:
        """A notebook's view: one row of the figures a person asks for."""
        import html

        cells = {
            "recipe": self.recipe,
            "status": self.status,
            "MB": fmt(self.size_mb, ".2f"),
            "× smaller": fmt(self.smaller, ".1f"),
            "p50 ms": fmt(self.p50_ms, ".2f"),
            "× faster": fmt(self.speedup, ".1f"),
            "top-1": fmt(self.top1, "pct"),
            "Δ pts": fmt(self.top1_change, "+.2f"),
        }
        head = "".join(f"<th>{html.escape(k)}</th>" for k in cells)
        row = "".join(f"<td>{html.escape(str(v))}</td>" for v in cells.values())
        return f"<table><tr>{head}</tr><tr>{row}</tr></table><small>{html.escape(str(self.folder))}</small>"

    def save(self, folder: Path | str) -> Result:
        """Copy the whole run folder to ``folder`` (created; files already there are replaced) and return the
        result as it is there."""
        target = Path(folder)
        shutil.copytree(self.folder, target, dirs_exist_ok=True)
        return Result(target, self.report)

    def __repr__(self) -> str:
        ratios = self.report.ratios
        figures = [f"status={self.status!r}"]
        if self.report.result.size_bytes:
            figures.append(f"{self.report.result.size_bytes / 1e6:.2f} MB")
        if ratios.size:
            figures.append(f"{ratios.size:.1f}x smaller")
        if ratios.speedup:
            figures.append(f"{ratios.speedup:.1f}x faster")
        if ratios.top1_delta_pts is not None:
            figures.append(f"top-1 {ratios.top1_delta_pts:+.2f} pts")
        if self.remedy:
            figures.append(f"by the {self.remedy} remedy")
        return f"Result({self.recipe!r}, {', '.join(figures)}, folder={str(self.folder)!r})"
