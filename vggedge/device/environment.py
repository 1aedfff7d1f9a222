"""What a figure was measured on: device, CPU and its instruction-set features, OS, Python, runtime.

Recorded with every report. No TensorFlow import: the TensorFlow version is recorded only when
TensorFlow is already loaded. Everything is read from the OS (``/proc/cpuinfo``, the device tree),
so ``bench`` on a Raspberry Pi records the same fields as ``optimize`` on a workstation.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from vggedge.core.report import Environment
from vggedge.core.version import __version__
from vggedge.device.runtime import Runtime, default_threads

# The instruction-set features that decide float and integer (int8) speed, as /proc/cpuinfo spells them.
# The same int8 model runs 1.1x faster than fp32 on an AVX2-only CPU and 4x faster with AVX-512 VNNI;
# on Arm the dot-product (asimddp) and i8mm instructions play that part (the Pi 5 has asimddp, the Pi 4 not).
SPEED_FEATURES = {
    "x86": ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),
    "arm": ("asimd", "asimddp", "i8mm", "bf16", "sve", "sve2"),
}
ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l", "armv6l")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _cpuinfo_field(info: str, *keys: str) -> str | None:
    """The first value of the first of ``keys`` found in /proc/cpuinfo text."""
    for key in keys:
        for line in info.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (x86 'model name', Arm 'Hardware'/'Model'), else platform's guess."""
    return _cpuinfo_field(_read("/proc/cpuinfo") or "", "model name", "Hardware", "Model", "cpu model") or (
        platform.processor() or platform.machine()
    )


def cpuinfo_family(info: str) -> str | None:
    """'x86' or 'arm' by the shape of /proc/cpuinfo itself ('flags' vs 'Features' lines), None if unreadable."""
    if _cpuinfo_field(info, "flags") is not None:
        return "x86"
    if _cpuinfo_field(info, "Features") is not None:
        return "arm"
    return None


def cpu_features(info: str | None = None) -> list[str]:
    """The speed-deciding instruction-set features this CPU has (see ``SPEED_FEATURES``), in that order."""
    info = _read("/proc/cpuinfo") if info is None else info
    family = cpuinfo_family(info or "")
    if family is None:
        return []
    present = set((_cpuinfo_field(info, "flags" if family == "x86" else "Features") or "").split())
    return [feature for feature in SPEED_FEATURES[family] if feature in present]


def emulation(info: str | None = None, machine: str | None = None, command: str | None = None) -> str | None:
    """Why this process looks emulated (e.g. aarch64 Python under qemu-user on an x86 host), else None.

    Emulated timings say nothing about any device. Two signs, either enough: the kernel still names
    the process after the emulator (``/proc/self/comm`` is ``qemu-aarch64…`` when qemu-user is run
    directly), or the CPU family in /proc/cpuinfo (which qemu-user passes through from the host) is
    not the one this Python was built for.
    """
    command = _read("/proc/self/comm") if command is None else command
    machine = machine or platform.machine()
    if command and command.startswith("qemu-"):
        return f"{machine} process under {command}"
    info = _read("/proc/cpuinfo") if info is None else info
    family = cpuinfo_family(info or "")
    if family is not None and (family == "arm") != (machine.lower() in ARM_MACHINES):
        return f"{machine} process on a {family} CPU ({_cpuinfo_field(info or '', 'model name') or 'unknown'})"
    return None


def cpu_mhz(info: str | None = None) -> float | None:
    """The CPU's maximum (else current) clock in MHz, where the OS tells it."""
    top = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if top and top.isdigit():
        return round(int(top) / 1000, 1)
    current = _cpuinfo_field(_read("/proc/cpuinfo") if info is None else (info or ""), "cpu MHz")
    try:
        return round(float(current), 1) if current else None
    except ValueError:
        return None


def device_model() -> str | None:
    """The board, e.g. 'Raspberry Pi 4 Model B Rev 1.5', from the device tree (None on a PC)."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def describe_environment(runtime: Runtime | None, threads: int | None, gpu: str | None = None) -> Environment:
    """The report's ``environment`` section."""
    tensorflow = sys.modules.get("tensorflow")
    info = _read("/proc/cpuinfo") or ""
    return Environment(
        device=device_model() or platform.node(),
        cpu=cpu_name(),
        cpu_features=cpu_features(info),
        cpu_mhz=cpu_mhz(info),
        cores=os.cpu_count(),
        machine=platform.machine(),
        emulated=emulation(info),
        os=platform.platform(),
        python=platform.python_version(),
        tensorflow=getattr(tensorflow, "__version__", None),
        vggedge=__version__,
        runtime=runtime.name if runtime else None,
        runtime_version=runtime.version if runtime else None,
        threads=threads or default_threads(),
        gpu=gpu,
    )
