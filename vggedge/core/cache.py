"""Where vggedge keeps what it makes once and reuses: the trained sample model, the sample images."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$VGGEDGE_CACHE``, else ``$XDG_CACHE_HOME/vggedge``, else ``~/.cache/vggedge``: the default of the CLI's
    ``--cache-dir`` and of the Python API's ``cache``, so a notebook and a shell share one trained sample (the API
    ignored ``VGGEDGE_CACHE`` and trained a second 400 MB copy). A caller that passes a folder gets that folder."""
    if os.environ.get("VGGEDGE_CACHE"):
        return Path(os.environ["VGGEDGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vggedge"
