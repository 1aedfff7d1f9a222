"""Where vggedge keeps what it makes once and reuses: the trained sample model, the sample images."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$VGGEDGE_CACHE``, else ``$XDG_CACHE_HOME/vggedge``, else ``~/.cache/vggedge``."""
    if os.environ.get("VGGEDGE_CACHE"):
        return Path(os.environ["VGGEDGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vggedge"
