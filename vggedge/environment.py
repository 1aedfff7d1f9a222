"""What a figure was measured on: device, CPU, OS, Python, runtime. Recorded with every report.

No TensorFlow import: the TensorFlow version is recorded only when TensorFlow is already loaded.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from vggedge.runtime import Runtime, default_threads


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (x86 'model name', Arm 'Hardware'/'Model'), else platform's guess."""
    info = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_model() -> str | None:
    """The board, e.g. 'Raspberry Pi 4 Model B Rev 1.5', from the device tree (None on a PC)."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def describe_environment(runtime: Runtime | None, threads: int | None, gpu: str | None = None) -> dict:
    """The report's ``environment`` section."""
    tensorflow = sys.modules.get("tensorflow")
    return {
        "device": device_model() or platform.node(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": getattr(tensorflow, "__version__", None),
        "runtime": runtime.name if runtime else None,
        "runtime_version": runtime.version if runtime else None,
        "threads": threads or default_threads(),
        "gpu": gpu,
    }
