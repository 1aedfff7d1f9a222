"""The device check on board trees (tests/data/boards): what it reads, and the warnings it gives with their fixes."""

from __future__ import annotations

from pathlib import Path

import pytest

from vggedge.core.report import DeviceCheck, Environment, Report
from vggedge.device.check import Snapshot, device_check, parse_throttled, snapshot, throttle_flags
from vggedge.device.environment import cpu_features

BOARDS = Path(__file__).parent / "data" / "boards"
MB = 2**20


def check_board(name: str, before: str | None, after: str | None, **kwargs: object) -> DeviceCheck:
    root = BOARDS / name
    first = snapshot(root, lambda: before)
    last = snapshot(root, lambda: after)
    return device_check(first, last, model_bytes=kwargs.pop("model_bytes", 10 * MB), root=root, **kwargs)


def test_pi5_in_a_good_state_reads_everything_and_warns_of_nothing():
    check = check_board("pi5-performance", "throttled=0x0", "throttled=0x0", machine="aarch64", userland_bits=64)
    assert check.board == "Raspberry Pi 5 Model B Rev 1.0"
    assert check.cpu_part == "Cortex-A76 (0xd0b)"
    assert (check.governor, check.freq_mhz_after, check.freq_max_mhz) == ("performance", 2400.0, 2400.0)
    assert check.temperature_c_after == pytest.approx(51.4, abs=0.05)
    assert check.throttled_now == check.throttled_during == check.throttled_since_boot == []
    assert check.mem_available_mb == pytest.approx(7654321 / 1024, abs=0.1)
    assert check.mem_needed_mb == pytest.approx(20.0)  # twice the file: XNNPACK packs the weights again
    assert check.swap_used_mb_after == 0
    assert check.warnings == []
    assert "asimddp" in cpu_features((BOARDS / "pi5-performance/proc/cpuinfo").read_text())


def test_pi4_on_ondemand_that_throttled_during_the_run_gets_every_warning_with_its_fix():
    # 0x60000 before: it had capped and throttled earlier since boot; 0xe0006 after: throttled now (bit 2),
    # capped now (bit 1), and soft temperature limit newly reached since boot (bit 19).
    check = check_board("pi4-ondemand-hot", "throttled=0x60000", "throttled=0xe0006", machine="aarch64")
    assert check.cpu_part == "Cortex-A72 (0xd08)"
    assert check.throttled_now == ["frequency capped", "throttled"]
    assert check.throttled_during == ["soft temperature limit"]
    assert check.throttled_since_boot == ["frequency capped", "throttled", "soft temperature limit"]
    assert (check.throttled_before, check.throttled_after) == ("0x60000", "0xe0006")
    text = "\n".join(check.warnings)
    assert "governor is ondemand" in text and "scaling_governor" in text  # the fix, as a command
    assert "throttled during the runs (frequency capped, throttled, soft temperature limit)" in text
    assert "heatsink or fan" in text
    assert "83 °C after the runs" in text
    assert len(check.warnings) == 3
    assert "asimddp" not in cpu_features((BOARDS / "pi4-ondemand-hot/proc/cpuinfo").read_text())


def test_earlier_throttling_since_boot_is_recorded_but_not_blamed_on_this_run():
    check = check_board("pi5-performance", "throttled=0x60000", "throttled=0x60000", machine="aarch64")
    assert check.throttled_since_boot == ["frequency capped", "throttled"]
    assert check.throttled_during == [] and check.throttled_now == []
    assert check.warnings == []


def test_under_voltage_says_to_use_the_official_supply():
    check = check_board("pi5-performance", "throttled=0x0", "throttled=0x10001", machine="aarch64")
    assert check.throttled_now == ["under-voltage"] and check.throttled_during == ["under-voltage"]
    assert len(check.warnings) == 1 and "power supply" in check.warnings[0]


def test_32bit_userland_on_a_64bit_kernel_and_too_little_memory():
    check = check_board("pi4-32bit-userland", None, None, machine="aarch64", userland_bits=32, model_bytes=138 * MB)
    assert (check.kernel_machine, check.userland_bits) == ("aarch64", 32)
    assert check.throttled_before is None and check.throttled_now == []  # no vcgencmd: nothing invented
    text = "\n".join(check.warnings)
    assert "32-bit userland on a 64-bit kernel" in text and "64-bit OS" in text
    assert "176 MB available, the model needs about 276 MB" in text


def test_swap_during_the_run_is_a_warning():
    root = BOARDS / "pi5-performance"
    before = Snapshot(freq_mhz=2400.0, temperature_c=50.0, throttled=0, swap_used_mb=0.0)
    after = Snapshot(freq_mhz=2400.0, temperature_c=55.0, throttled=0, swap_used_mb=64.0)
    check = device_check(before, after, model_bytes=MB, root=root, machine="aarch64", userland_bits=64)
    assert check.warnings == ["the board swapped during the runs (64 MB): close other programs or use a smaller model"]


def test_a_pc_has_none_of_it_and_the_check_invents_nothing(tmp_path):
    check = device_check(snapshot(tmp_path, lambda: None), snapshot(tmp_path, lambda: None), MB, tmp_path, "x86_64", 64)
    assert check.board is check.cpu_part is check.governor is check.temperature_c_after is None
    assert check.mem_available_mb is None and check.warnings == []


@pytest.mark.parametrize(
    ("text", "value"), [("throttled=0x50005", 0x50005), ("0x0", 0), ("50005", 0x50005), ("", None), ("junk", None)]
)
def test_vcgencmd_output_is_parsed(text, value):
    assert parse_throttled(text) == value


def test_throttle_bits_are_named_now_and_since_boot():
    assert throttle_flags(0x50005) == ["under-voltage", "throttled"]
    assert throttle_flags(0x50005, since_boot=True) == ["under-voltage", "throttled"]
    assert throttle_flags(0x80000, since_boot=True) == ["soft temperature limit"]


def test_the_check_survives_a_report_round_trip_and_shows_in_markdown(tmp_path):
    from vggedge.core.report import BaselineFigures, DatasetSection, ModelSection, RecipeSection, ResultFigures

    check = check_board("pi4-ondemand-hot", "throttled=0x0", "throttled=0x20002", machine="aarch64")
    environment = Environment(device="Raspberry Pi 4 Model B Rev 1.5", device_check=check)
    sections = (
        RecipeSection(name="int8"),
        ModelSection(),
        DatasetSection(),
        environment,
        BaselineFigures(),
        ResultFigures(),
    )
    report = Report(*sections)
    path = report.write(tmp_path)
    again = Report.load(path)
    assert again.environment.device_check == check
    markdown = (tmp_path / "report.md").read_text()
    assert "## Device check" in markdown and "⚠ CPU governor is ondemand" in markdown
