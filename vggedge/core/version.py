"""The installed vggedge's version, which every report records (``environment.vggedge``) and ``--version`` prints."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("vggedge")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
