"""Where vggedge keeps what it makes once and reuses: the trained sample model, the sample images."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vggedge``, else ``~/.cache/vggedge``: the default of the CLI's ``--cache-dir``.

    The CLI is the one place that reads the environment (``VGGEDGE_CACHE`` sets ``--cache-dir``);
    everything below it is handed the folder, so a library caller or a test picks its own."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vggedge"
