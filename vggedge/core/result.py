"""What ``vggedge.optimize`` and ``vggedge.search`` return: one recipe's run folder and its typed report."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

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
        path = self.folder / "model.tflite"
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
