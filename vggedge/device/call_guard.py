"""A bound on one interpreter call for the local commands (``bench``, ``predict``), and Ctrl-C that works during one.

A valid TFLite file can loop for ever (a ``WHILE`` op whose condition never fails), and while the interpreter's C
loop runs, Python neither returns nor runs its SIGINT handler: the command hung and ignored Ctrl-C. (The bench
server runs each client's model in a child process under limits instead: :mod:`vggedge.device.timing_job`.)

:func:`install` starts a watchdog thread and registers a wake-up file descriptor for signals, which the C-level
handler writes to even while the main thread is inside the interpreter. During a guarded call
(:func:`call`), the watchdog ends the process in one line when the call passes its limit (exit 2) or when
Ctrl-C arrives (exit 130); outside calls, Ctrl-C is Python's usual KeyboardInterrupt. Nothing is half-written:
every file vggedge writes is written atomically. Not installed (a library user, the server's child), a guarded
call is a plain call.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from vggedge.core import defaults

T = TypeVar("T")
THREAD_NAME = "vggedge-guard"


class _Guard:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.started: float | None = None
        self.read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="vggedge-call-guard", daemon=True).start()

    def _watch(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # named for ps and /proc/PID/task/*/comm (Linux)
            import ctypes

            pr_set_name = 15
            ctypes.CDLL(None).prctl(pr_set_name, THREAD_NAME.encode(), 0, 0, 0)
        while True:
            ready, _, _ = select.select([self.read_end], [], [], 0.25)
            woken = os.read(self.read_end, 256) if ready else b""
            started = self.started
            if started is None:
                continue
            if signal.SIGINT in woken:
                _stop("interrupted during a call of the model: stopped (nothing half-written is left)", 130)
            if time.monotonic() - started > self.limit_s:
                _stop(
                    f"error: one call of the model took more than {self.limit_s:g} s, so it was stopped: a model that "
                    "loops for ever (a WHILE op whose condition never fails) never returns",
                    2,
                )


def _stop(line: str, code: int) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(code)  # the main thread is inside the interpreter's C loop: no exception can reach it


_guard: _Guard | None = None


def install(limit_s: float = defaults.MAX_CALL_S) -> None:
    """Guard every later :func:`call` in this process (from the main thread; once is enough)."""
    global _guard
    if _guard is None and threading.current_thread() is threading.main_thread():
        _guard = _Guard(limit_s)
    elif _guard is not None:
        _guard.limit_s = limit_s


def call(function: Callable[[], T]) -> T:
    """``function()``, one interpreter call, under the installed guard (a plain call when none is installed: the
    guard costs a timed latency nothing outside ``bench`` and ``predict``)."""
    guard = _guard
    if guard is None:
        return function()
    guard.started = time.monotonic()
    try:
        return function()
    finally:
        guard.started = None
