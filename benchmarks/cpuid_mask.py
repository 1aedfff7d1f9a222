"""Run a benchmark with XNNPACK's and oneDNN's AVX2 kernels on a CPU that has more (`avx2_only.c`).

The question it answers: on an AVX2-only EPYC, full-size `int8` ran at 0.70x OpenVINO + NNCF int8's speed. Is that
TFLite's AVX2 int8 kernels or the exported graph? Masking CPUID makes both runtimes pick the code paths they pick
on such a CPU, side by side on one machine. The hardware under the instructions is still this one, so the figures
are labelled "AVX2 kernels on <this CPU>", never passed off as an AVX2-only CPU's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("avx2_only.c")
MARKER = "VGGEDGE_AVX2_KERNELS"  # set in the re-executed process: its CPUID answers are masked


def masked() -> bool:
    return bool(os.environ.get(MARKER))


def build_library(folder: Path) -> Path:
    """``avx2_only.c`` compiled into ``folder`` (gcc), ready for LD_PRELOAD."""
    library = folder / "avx2_only.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(SOURCE)], check=True)
    return library


def reexec_with_avx2_kernels() -> None:
    """Compile the preload library and re-run this very command under it (the masking must be armed before any
    runtime reads CPUID, and every child process inherits it through LD_PRELOAD)."""
    if masked():
        return
    if "cpuid_fault" not in Path("/proc/cpuinfo").read_text():
        raise SystemExit(
            "--kernels avx2 needs CPUID faulting (the cpuid_fault flag in /proc/cpuinfo); this CPU has none"
        )
    library = build_library(Path(tempfile.mkdtemp(prefix="vggedge-avx2-")))
    preload = " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD", "")]))
    os.environ.update({"LD_PRELOAD": preload, MARKER: str(library)})
    os.execv(sys.executable, [sys.executable, *sys.argv])
