"""Importing the workstation API prints nothing: TensorFlow's start-up lines (absl, CUDA) stay off a notebook."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_api_writes_nothing_to_stderr():
    environment = {k: v for k, v in os.environ.items() if k not in ("VGGEDGE_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run(
        [sys.executable, "-c", "import vggedge.api, vggedge.backend.keras_env"],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr[-500:]
