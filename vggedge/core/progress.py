"""Progress for long work, on stderr so stdout stays for results; ``--quiet`` turns it off.

On a terminal: rich bars that vanish when done. Anywhere else (a log file, a pipe, CI): plain lines, one per
stage when it ends, one per epoch of training, and one every :data:`LOG_EVERY_S` seconds of a long stage, so
a log shows that a long job is moving and how fast, without the bars' control characters.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vggedge.core.formatting import printable

T = TypeVar("T")

LOG_EVERY_S = 30.0  # a plain log's line interval within one long stage


def on_terminal() -> bool:
    """Whether stderr is a terminal (bars) or a log (lines)."""
    return Console(stderr=True).is_terminal


LOG_LINE_LIMIT = 2000  # a progress line is never a wall of text, whatever it quotes


def log_line(text: str) -> None:
    """One progress line on stderr, flushed at once (a log read while the job runs is up to date); a file name or
    class name inside it cannot forge another line or send a terminal an escape sequence (escaped)."""
    print(printable(text, LOG_LINE_LIMIT), file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``: how long a stage took or has left, for a person reading a log."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class Laps:
    """A stopwatch that writes each lap into ``into``: ``lap("convert")`` stores the seconds since the last lap
    (or since it was made) under that name, so a record can say where a long job's time went."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.last, 2)
        self.last = now


class LineProgress:
    """The plain-log counterpart of a bar over ``total`` items: a line now and then, and one at the end."""

    def __init__(self, description: str, total: int | None, unit: str = "") -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.started = self.last_line = time.perf_counter()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last_line >= LOG_EVERY_S and (self.total is None or self.done < self.total):
            self.last_line = now
            log_line(f"{self.description}: {self.status(now)}")

    def status(self, now: float) -> str:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        counted = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"{counted}{self.unit}, {rate:.1f}/s, {duration(elapsed)}"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {duration((self.total - self.done) / rate)} left"
        return text

    def finish(self) -> None:
        log_line(f"{self.description}: {self.done}{self.unit} in {duration(time.perf_counter() - self.started)}")


class RateColumn(ProgressColumn):
    """Items (images, batches) per second: whether a long job is going at the speed it should."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:.1f}/s", style="progress.data.speed")


def make_progress() -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # bars vanish when done: the lines that stay are results and errors
        disable=not console.is_terminal,  # a log or a pipe gets results, not the bars' blank lines
    )


def track(items: Iterable[T], description: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, plain lines in a log (or silently when ``enabled`` is false)."""
    if not enabled:
        yield from items
        return
    if not on_terminal():
        lines = LineProgress(description, total)
        for item in items:
            yield item
            lines.advance()
        lines.finish()
        return
    with make_progress() as progress:
        yield from progress.track(items, total=total, description=description)
