"""Options shared by several commands, each with the environment variable that sets it.

The CLI is the one place vggedge reads its own environment variables; below it, every function is
handed the value. (``VGGEDGE_RUNTIME``, ``VGGEDGE_COOLDOWN`` and ``VGGEDGE_SUSTAIN`` set ``bench --runtime``,
``--cooldown`` and ``--sustain`` the same way, in ``cli/bench.py``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

CacheDirOption = Annotated[
    Optional[Path],
    typer.Option(
        envvar="VGGEDGE_CACHE",
        help="Where the sample's images and trained model are kept. Default: $XDG_CACHE_HOME/vggedge or "
        "~/.cache/vggedge.",
        show_default=False,
    ),
]
OfflineOption = Annotated[
    bool,
    typer.Option(
        envvar="VGGEDGE_OFFLINE",
        help="Never try to download (Keras' ImageNet weights): fail at once with the way out instead.",
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        envvar="VGGEDGE_VERBOSE",
        help="Also show TensorFlow's, the converter's and the interpreter's own log lines (hidden by default).",
    ),
]


def apply_verbosity(verbose: bool) -> None:
    """Called first by every command that loads TensorFlow or an interpreter, before either is imported."""
    if not verbose:
        from vggedge.core.quiet import silence_native_stderr

        silence_native_stderr()


# Help panels: `--help` groups a command's options under these headings.
MODEL = "Model"
DATA = "Data"
BUDGET = "Budget and verification"
TIMING = "Timing"
TRAINING = "Fine-tuning"
SEARCH = "Automatic search (--recipe auto)"
OUTPUT = "Output"
SERVER = "Bench server (--serve)"
PROFILE = "Latency table (--profile)"
