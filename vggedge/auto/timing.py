"""Where the search's candidates are timed, behind one small protocol (:class:`Timer`).

- :class:`LocalTimer`: this machine's TFLite interpreter; against the current model, interleaved side by side.
- :class:`RemoteTimer`: ``vggedge bench --serve`` on the device (``--time-on http://HOST:PORT``).
- :class:`TableTimer`: predicted from a latency table the device measured (``--time-on TABLE.json``): only the
  width levels its kit holds, deterministic, so no side-by-side reference.

:func:`timer_for` picks one from ``--time-on``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from vggedge.auto.remote import BenchClient
from vggedge.auto.rules import MIN_TIMING_S
from vggedge.core.metrics import adaptive_runs, latency_summary, time_calls, time_interleaved
from vggedge.device.latency_table import LatencyTable
from vggedge.device.models import DeviceModel, load


@dataclasses.dataclass(frozen=True)
class Timing:
    latency_ms: float | None
    reference_ms: float | None  # the current model timed beside it (None: not asked, or a table's prediction)
    timed_on: str


class Timer(Protocol):
    """Times one candidate flatbuffer, optionally beside the current model's (``against``)."""

    def reachable(self, level: int) -> bool:
        """Whether this timer can answer for a shape with a block at width ``level``."""
        ...

    def time(
        self, candidate: DeviceModel, flatbuffer: bytes, levels: list[int], head: str, against: bytes | None
    ) -> Timing: ...


@dataclasses.dataclass
class LocalTimer:
    """This machine's interpreter: p50 of at least ``runs`` calls and :data:`MIN_TIMING_S`; with ``against``, both
    models invoked in turn, so a burst of load on a shared machine slows both alike instead of deciding."""

    threads: int | None
    runs: int
    image: np.ndarray  # what every timed call is fed (a search image: the same work as a real one)

    def reachable(self, level: int) -> bool:
        return True

    def time(
        self, candidate: DeviceModel, flatbuffer: bytes, levels: list[int], head: str, against: bytes | None
    ) -> Timing:
        candidate.set_input(self.image)
        timed_on = f"this machine ({candidate.runtime.name} {candidate.runtime.version}, {candidate.threads} threads)"
        if against is None:
            runs = adaptive_runs(candidate.invoke_once, MIN_TIMING_S, self.runs)
            return Timing(latency_summary(time_calls(candidate.invoke_once, warmup=0, runs=runs)).p50, None, timed_on)
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            (Path(folder) / "current.tflite").write_bytes(against)
            current = load(Path(folder) / "current.tflite", threads=self.threads)
            current.set_input(self.image)
            ours, theirs = time_interleaved([candidate.invoke_once, current.invoke_once], MIN_TIMING_S, self.runs)
        return Timing(ours.p50, theirs.p50, timed_on)


@dataclasses.dataclass
class RemoteTimer:
    """The board itself: the server times each file at least a second; the current model right after the
    candidate, so the two figures are taken as close together as the board allows."""

    client: BenchClient
    threads: int | None
    runs: int

    def reachable(self, level: int) -> bool:
        return True

    def time(
        self, candidate: DeviceModel, flatbuffer: bytes, levels: list[int], head: str, against: bytes | None
    ) -> Timing:
        latency, timed_on = self.client.time(flatbuffer, self.threads, self.runs)
        reference = self.client.time(against, self.threads, self.runs)[0] if against is not None else None
        return Timing(latency, reference, timed_on)


@dataclasses.dataclass
class TableTimer:
    """Predicted from the pieces the device measured: only the levels its kit holds."""

    table: LatencyTable

    def reachable(self, level: int) -> bool:
        return level in self.table.levels

    def time(
        self, candidate: DeviceModel, flatbuffer: bytes, levels: list[int], head: str, against: bytes | None
    ) -> Timing:
        return Timing(self.table.predict(levels, head), None, self.table.describe())


def timer_for(
    time_on: str | None,
    token: str | None,
    threads: int | None,
    runs: int,
    image: np.ndarray,
    fingerprint: dict,
    quantization: str,
) -> Timer:
    """``--time-on``: a URL (the bench server), a path (a latency table, refused in one line for another model,
    quantization or thread count), or nothing (this machine)."""
    if time_on and time_on.startswith(("http://", "https://")):
        return RemoteTimer(BenchClient(time_on, token), threads, runs)
    if time_on:
        table = LatencyTable.load(Path(time_on))
        table.require(fingerprint, quantization, threads)
        return TableTimer(table)
    return LocalTimer(threads, runs, image)
