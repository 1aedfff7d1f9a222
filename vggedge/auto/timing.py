"""Where the search's candidates are timed, behind one small protocol (:class:`Timer`), and in which runtime.

A candidate is timed as the runtime the user deploys with takes it (:class:`Timed`: ``--runtime``, default LiteRT):
its TFLite flatbuffer, its ONNX file, or its OpenVINO IR, each written as the final run writes that format.

- :class:`LocalTimer`: this machine, in that runtime; against the current model, interleaved side by side.
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
class Timed:
    """A candidate as its timing runtime takes it: its files by name, the model's file first (a TFLite or ONNX model
    is one file, an OpenVINO IR two)."""

    files: dict[str, bytes]

    def write(self, folder: Path) -> Path:
        """The files written into ``folder`` (made if needed); returns the model's own file."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in self.files.items():
            (folder / name).write_bytes(content)
        return folder / next(iter(self.files))

    def single(self) -> bytes:
        """The one file a bench server takes (:func:`timer_for` refuses a runtime whose format has more)."""
        (content,) = self.files.values()
        return content


@dataclasses.dataclass(frozen=True)
class Timing:
    latency_ms: float | None
    reference_ms: float | None  # the current model timed beside it (None: not asked, or a table's prediction)
    timed_on: str


class Timer(Protocol):
    """Times one candidate (``candidate``: loaded in the timing runtime; ``timed``: its files), optionally beside the
    current model's files (``against``)."""

    def reachable(self, level: int) -> bool:
        """Whether this timer can answer for a shape with a block at width ``level``."""
        ...

    def time(
        self, candidate: DeviceModel, timed: Timed, levels: list[int], head: str, against: Timed | None
    ) -> Timing: ...


@dataclasses.dataclass
class LocalTimer:
    """This machine, in ``runtime``: p50 of at least ``runs`` calls and :data:`MIN_TIMING_S`; with ``against``, both
    models invoked in turn, so a burst of load on a shared machine slows both alike instead of deciding."""

    threads: int | None
    runs: int
    image: np.ndarray  # what every timed call is fed (a search image: the same work as a real one)
    runtime: str | None = None  # a distribution name (None: the first installed one that runs the format)

    def reachable(self, level: int) -> bool:
        return True

    def time(self, candidate: DeviceModel, timed: Timed, levels: list[int], head: str, against: Timed | None) -> Timing:
        candidate.set_input(self.image)
        timed_on = f"this machine ({candidate.runtime.name} {candidate.runtime.version}, {candidate.threads} threads)"
        if against is None:
            runs = adaptive_runs(candidate.invoke_once, MIN_TIMING_S, self.runs)
            return Timing(latency_summary(time_calls(candidate.invoke_once, warmup=0, runs=runs)).p50, None, timed_on)
        with tempfile.TemporaryDirectory(prefix="vggedge-auto-") as folder:
            current = load(against.write(Path(folder)), threads=self.threads, runtime=self.runtime)
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

    def time(self, candidate: DeviceModel, timed: Timed, levels: list[int], head: str, against: Timed | None) -> Timing:
        latency, timed_on = self.client.time(timed.single(), self.threads, self.runs)
        reference = self.client.time(against.single(), self.threads, self.runs)[0] if against is not None else None
        return Timing(latency, reference, timed_on)


@dataclasses.dataclass
class TableTimer:
    """Predicted from the pieces the device measured: only the levels its kit holds."""

    table: LatencyTable

    def reachable(self, level: int) -> bool:
        return level in self.table.levels

    def time(self, candidate: DeviceModel, timed: Timed, levels: list[int], head: str, against: Timed | None) -> Timing:
        return Timing(self.table.predict(levels, head), None, self.table.describe())


def timer_for(
    time_on: str | None,
    token: str | None,
    threads: int | None,
    runs: int,
    image: np.ndarray,
    fingerprint: dict,
    quantization: str,
    runtime: str | None = None,
) -> Timer:
    """``--time-on``: a URL (the bench server), a path (a latency table, refused in one line for another model,
    quantization or thread count), or nothing (this machine, in ``runtime``)."""
    if time_on and time_on.startswith(("http://", "https://")):
        return RemoteTimer(BenchClient(time_on, token), threads, runs)
    if time_on:
        table = LatencyTable.load(Path(time_on))
        table.require(fingerprint, quantization, threads)
        return TableTimer(table)
    return LocalTimer(threads, runs, image, runtime)
