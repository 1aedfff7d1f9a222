"""The device check: is this board in a state where its latency figure means anything?

On a Raspberry Pi the same file runs fast or slow for reasons a latency figure does not show: a 32-bit
userland on a 64-bit kernel (no aarch64 XNNPACK kernels, no ai-edge-litert wheel), a power-saving governor,
thermal throttling (the Arm cores step down between 80 and 85 °C), under-voltage, swap. ``bench`` reads
the board before and after its timed runs (:func:`snapshot`) and turns the two into a
:class:`~vggedge.core.report.DeviceCheck` with a warning, and its fix in words, for each condition that makes
the figure unrepresentative (:func:`device_check`).

Every reader takes a root folder (``/`` on the device), so the tests run on recorded Pi 4 and Pi 5 trees
on any machine; ``vcgencmd`` is a command, so it is passed in as a callable.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from vggedge.core.report import DeviceCheck

# `vcgencmd get_throttled`: bits 0-3 describe now, bits 16-19 the same conditions since boot (sticky).
THROTTLE_BITS = {
    0: "under-voltage",
    1: "frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}
SINCE_BOOT_SHIFT = 16
# Arm's CPU part numbers (/proc/cpuinfo "CPU part") for the cores Raspberry Pis and their peers carry.
ARM_PARTS = {
    0xB76: "ARM1176",
    0xC07: "Cortex-A7",
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD0A: "Cortex-A75",
    0xD0B: "Cortex-A76",
    0xD0D: "Cortex-A77",
    0xD41: "Cortex-A78",
}
HOT_C = 80.0  # the Pi's Arm cores start to step down between 80 and 85 °C
# XNNPACK packs the weights again when it takes over the graph: about twice the file in memory.
MEMORY_PER_MODEL_BYTE = 2.0
FAST_GOVERNORS = ("performance",)

Vcgencmd = Callable[[], "str | None"]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What changes while the model runs: clock, temperature, throttling, swap."""

    freq_mhz: float | None
    temperature_c: float | None
    throttled: int | None
    swap_used_mb: float | None


def _read(root: Path, path: str) -> str | None:
    try:
        return (root / path.lstrip("/")).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def system_vcgencmd() -> str | None:
    """``vcgencmd get_throttled`` on this board, None where the command does not exist or fails."""
    command = shutil.which("vcgencmd")
    if command is None:
        return None
    try:
        done = subprocess.run([command, "get_throttled"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def parse_throttled(text: str | None) -> int | None:
    """``throttled=0x50005`` (or a bare hex number) as an integer; None when unreadable."""
    if not text:
        return None
    value = text.split("=", 1)[-1].strip()
    try:
        return int(value, 16)
    except ValueError:
        return None


def throttle_flags(value: int | None, since_boot: bool = False) -> list[str]:
    if value is None:
        return []
    shift = SINCE_BOOT_SHIFT if since_boot else 0
    return [name for bit, name in THROTTLE_BITS.items() if value & (1 << (bit + shift))]


def meminfo(root: Path) -> dict[str, float]:
    """/proc/meminfo in MB."""
    figures = {}
    for line in (_read(root, "/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        amount = rest.split()
        if amount and amount[0].isdigit():
            figures[key.strip()] = int(amount[0]) / 1024
    return figures


def swap_used_mb(root: Path) -> float | None:
    info = meminfo(root)
    if "SwapTotal" not in info or "SwapFree" not in info:
        return None
    return round(info["SwapTotal"] - info["SwapFree"], 1)


def temperature_c(root: Path) -> float | None:
    """The hottest thermal zone in °C (the Pi has one, ``cpu-thermal``)."""
    zones = sorted((root / "sys/class/thermal").glob("thermal_zone*/temp"))
    values = [_number(_read(root, str(zone.relative_to(root)))) for zone in zones]
    readings = [value / 1000 for value in values if value is not None]
    return round(max(readings), 1) if readings else None


def cpufreq(root: Path, name: str) -> str | None:
    return _read(root, f"/sys/devices/system/cpu/cpu0/cpufreq/{name}")


def freq_mhz(root: Path, name: str) -> float | None:
    value = _number(cpufreq(root, name))
    return round(value / 1000, 1) if value is not None else None


def cpu_part(root: Path) -> str | None:
    """The Arm core by its part number, e.g. ``Cortex-A72 (0xd08)``; None on x86."""
    for line in (_read(root, "/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CPU part":
            try:
                number = int(value.strip(), 16)
            except ValueError:
                return value.strip() or None
            return f"{ARM_PARTS.get(number, 'Arm core')} ({value.strip()})"
    return None


def board(root: Path) -> str | None:
    return _read(root, "/proc/device-tree/model") or _read(root, "/sys/firmware/devicetree/base/model")


def snapshot(root: Path = Path("/"), vcgencmd: Vcgencmd = system_vcgencmd) -> Snapshot:
    return Snapshot(
        freq_mhz=freq_mhz(root, "scaling_cur_freq"),
        temperature_c=temperature_c(root),
        throttled=parse_throttled(vcgencmd()),
        swap_used_mb=swap_used_mb(root),
    )


def device_check(
    before: Snapshot,
    after: Snapshot,
    model_bytes: int,
    root: Path = Path("/"),
    machine: str | None = None,
    userland_bits: int | None = None,
) -> DeviceCheck:
    """The board's state around the runs, with a warning and its fix for each figure-spoiling condition."""
    machine = machine or platform.machine()
    bits = userland_bits or struct.calcsize("P") * 8
    memory = meminfo(root)
    check = DeviceCheck(
        board=board(root),
        cpu_part=cpu_part(root),
        kernel_machine=machine,
        userland_bits=bits,
        governor=cpufreq(root, "scaling_governor"),
        freq_mhz_before=before.freq_mhz,
        freq_mhz_after=after.freq_mhz,
        freq_max_mhz=freq_mhz(root, "cpuinfo_max_freq"),
        temperature_c_before=before.temperature_c,
        temperature_c_after=after.temperature_c,
        throttled_before=f"0x{before.throttled:x}" if before.throttled is not None else None,
        throttled_after=f"0x{after.throttled:x}" if after.throttled is not None else None,
        throttled_now=throttle_flags(after.throttled),
        throttled_during=_appeared(before.throttled, after.throttled),
        throttled_since_boot=throttle_flags(after.throttled, since_boot=True),
        mem_available_mb=round(memory["MemAvailable"], 1) if "MemAvailable" in memory else None,
        mem_needed_mb=round(model_bytes * MEMORY_PER_MODEL_BYTE / 2**20, 1),
        swap_used_mb_before=before.swap_used_mb,
        swap_used_mb_after=after.swap_used_mb,
    )
    check.warnings = warnings(check)
    return check


def _appeared(before: int | None, after: int | None) -> list[str]:
    """Sticky since-boot conditions set after the runs but not before them: they happened during the runs."""
    if after is None:
        return []
    earlier = set(throttle_flags(before, since_boot=True))
    return [flag for flag in throttle_flags(after, since_boot=True) if flag not in earlier]


def warnings(check: DeviceCheck) -> list[str]:
    """Each condition that makes this board's figure unrepresentative, with its fix."""
    found = []
    if (check.kernel_machine or "").lower() in ("aarch64", "arm64") and check.userland_bits == 32:
        found.append(
            "32-bit userland on a 64-bit kernel: no aarch64 XNNPACK kernels and no ai-edge-litert wheel; "
            "use a 64-bit OS (Raspberry Pi OS 64-bit)"
        )
    if check.governor and check.governor not in FAST_GOVERNORS:
        found.append(
            f"CPU governor is {check.governor}: the clock may sit low between runs; set it to performance: "
            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
        )
    if "under-voltage" in check.throttled_now or "under-voltage" in check.throttled_during:
        found.append("under-voltage during the runs: use the board's official power supply (Pi 4 5V/3A, Pi 5 5V/5A)")
    heat = [flag for flag in (*check.throttled_now, *check.throttled_during) if flag != "under-voltage"]
    if heat:
        found.append(
            f"throttled during the runs ({', '.join(dict.fromkeys(heat))}): add a heatsink or fan, "
            "and let the board cool before timing"
        )
    if check.temperature_c_after is not None and check.temperature_c_after >= HOT_C:
        found.append(
            f"{check.temperature_c_after:.0f} °C after the runs: the Arm cores step down between 80 and 85 °C; "
            "add a heatsink or fan"
        )
    if (
        check.swap_used_mb_before is not None
        and check.swap_used_mb_after is not None
        and check.swap_used_mb_after - check.swap_used_mb_before > 1
    ):
        found.append(
            f"the board swapped during the runs ({check.swap_used_mb_after - check.swap_used_mb_before:.0f} MB): "
            "close other programs or use a smaller model"
        )
    elif (
        check.mem_available_mb is not None
        and check.mem_needed_mb is not None
        and check.mem_available_mb < check.mem_needed_mb
    ):
        found.append(
            f"{check.mem_available_mb:.0f} MB available, the model needs about {check.mem_needed_mb:.0f} MB "
            "(XNNPACK packs its weights again): it may swap; close other programs or use a smaller model"
        )
    return found
