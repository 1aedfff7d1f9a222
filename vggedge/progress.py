"""Progress bars for long work (rich, on stderr so stdout stays for results); ``--quiet`` turns them off."""

from __future__ import annotations

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

T = TypeVar("T")


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
    """Iterate with a progress bar (or silently when ``enabled`` is false)."""
    if not enabled:
        yield from items
        return
    with make_progress() as progress:
        yield from progress.track(items, total=total, description=description)
