"""Keep TensorFlow's and the interpreters' own log lines off the user's terminal (``--verbose`` keeps them).

TensorFlow, absl, oneDNN, the TFLite converter and the XNNPACK delegate write straight to file
descriptor 2 from C++ ("I0000 … cudart_stub.cc … Could not find cuda drivers", "oneDNN custom
operations are on", "fully_quantize: 0, inference_type: 6", "INFO: Created TensorFlow Lite XNNPACK
delegate for CPU."), some of them even with ``TF_CPP_MIN_LOG_LEVEL=3``. Python-level settings cannot
reach them, so the descriptor itself is pointed at /dev/null, after Python's ``sys.stderr`` has been
moved to a copy of the terminal's descriptor: vggedge's own messages, progress bars, errors and
tracebacks still reach the user. What the user must know (a model that failed to convert, a budget
missed) is said by vggedge in its own words, in the reports and the summary.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

_done = False


def silence_native_stderr() -> None:
    """Point descriptor 2 at /dev/null for the rest of the process; Python's stderr stays on the terminal."""
    global _done
    if _done:
        return
    _done = True
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    python_on_fd2 = False
    with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
        python_on_fd2 = sys.stderr.fileno() == 2
    if python_on_fd2:
        terminal = os.dup(2)
        sys.stderr = io.TextIOWrapper(
            os.fdopen(terminal, "wb", buffering=0),
            encoding=sys.stderr.encoding or "utf-8",
            errors="backslashreplace",
            write_through=True,
        )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


@contextlib.contextmanager
def native_stderr_silenced():  # noqa: ANN201 - a context manager
    """Descriptor 2 at /dev/null for the duration only (the library's way: an application's own stderr is left as it
    was afterwards): what ``Classifier`` wraps the interpreter's creation in, whose delegate prints a notice."""
    if _done:  # the CLI silenced it already, for good
        yield
        return
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
