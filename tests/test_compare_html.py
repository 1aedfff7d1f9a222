"""The compare page as a person sees it: headless Chromium renders it, and the plots are visible."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_compare_html_renders_with_plots(cli, all_runs, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium for the screenshot test (.ci/run installs Debian's chromium)")
        pytest.skip("needs Chromium: apt-get install chromium")
    assert cli("compare", all_runs, "--out", tmp_path, "--format", "md").code == 0
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1600,1400",
            f"--screenshot={shot}",
            (tmp_path / "compare.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # The two plots sit below the table: look for their marks in the lower part of the page.
    lower = pixels[pixels.shape[0] // 3 :]
    red = (lower[..., 0] > 180) & (lower[..., 1] < 90) & (lower[..., 2] < 90)  # Pareto points and line
    green = (lower[..., 1] > 100) & (lower[..., 0] < 60) & (lower[..., 2] < 90)  # ok points (status colour)
    dark = lower.sum(axis=2) < 200  # axes, ticks, labels
    assert red.sum() > 200, "no Pareto marks visible"
    assert green.sum() > 50 or red.sum() > 400
    assert dark.sum() > 2000, "no axes or text visible"
