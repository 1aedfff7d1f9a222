"""One timing job of ``bench --serve`` in a child process, with a wall-clock and a memory limit.

A client's model is untrusted work: a valid TFLite file can loop for ever (a ``WHILE`` op), declare an input of
gigabytes, or crash the interpreter. So the server never loads it in its own process. The child (``spawn``: a
fresh interpreter, nothing inherited but the arguments) sets an address-space limit above what its own imports
take, refuses a model whose declared input and output alone exceed it (``TFLiteModel``'s ``max_io_bytes``),
reports its first call, and times. The parent waits with a deadline: the first call within
:attr:`JobLimits.first_call_s`, the rest within a budget derived from that call's time, ``runs`` and ``seconds``,
capped at :attr:`JobLimits.max_job_s`. A child past its deadline is killed; a crash, a signal or a limit becomes
one :class:`JobError` with an HTTP status and a reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from pathlib import Path

from vggedge.core.errors import UserError
from vggedge.core.metrics import adaptive_runs, time_calls

MAX_ADAPTIVE_RUNS = 5000


@dataclasses.dataclass(frozen=True)
class JobLimits:
    memory_bytes: int  # what the model may take beyond the child's own imports (address space)
    first_call_s: float = 60.0  # loading the model and its first call
    max_job_s: float = 300.0  # the whole job, however many runs were asked


class JobError(Exception):
    """A timing job that could not finish: ``status`` is the HTTP answer (413 too large, 422 the model's fault)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass(frozen=True)
class Job:
    path: str
    threads: int
    runs: int
    seconds: float
    warmup: int
    runtime: str | None
    emulated: bool


def run_job(job: Job, limits: JobLimits) -> list[float]:
    """The job's timings in ms (empty under emulation), or a :class:`JobError`."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(job, limits.memory_bytes, send, os.getpid()), daemon=True)
    child.start()
    send.close()
    try:
        return _wait(child, receive, job, limits)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=10)


def _wait(child: multiprocessing.process.BaseProcess, receive: object, job: Job, limits: JobLimits) -> list[float]:
    started = time.monotonic()
    deadline, stage = started + min(limits.first_call_s, limits.max_job_s), "loading the model and its first call"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not receive.poll(remaining):  # type: ignore[attr-defined]
            child.kill()
            raise JobError(422, f"stopped after {time.monotonic() - started:.0f} s: {stage} took too long")
        try:
            kind, value = receive.recv()  # type: ignore[attr-defined]
        except (EOFError, OSError):
            break  # the child ended without a word: a crash or a signal
        if kind == "first_call":
            budget = (job.warmup + job.runs + 5) * value * 3 + 2 * job.seconds + 10
            deadline = started + min(limits.max_job_s, time.monotonic() - started + budget)
            stage = f"timing ({job.runs} runs, {job.seconds} s asked, first call {value:.2f} s)"
        elif kind == "done":
            return value
        else:
            raise JobError(*value)
    child.join(timeout=10)
    code = child.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        raise JobError(422, f"the model crashed the timing process ({name})")
    raise JobError(422, f"the timing process ended without an answer (exit code {code})")


def _child(job: Job, memory_bytes: int, send: object, parent: int) -> None:
    """In the child: tie its life to the server's, limit the address space, check the declared sizes, report the
    first call, time."""
    die_with(parent, Path(job.path).parent)
    try:
        send.send(("done", _time(job, memory_bytes, send)))  # type: ignore[attr-defined]
    except MemoryError:
        message = f"the model needs more memory than this server allows ({memory_bytes / 1e6:.0f} MB, --max-memory-mb)"
        send.send(("error", (422, message)))  # type: ignore[attr-defined]
    except JobError as error:
        send.send(("error", (error.status, error.message)))  # type: ignore[attr-defined]
    except UserError as error:  # the model file itself: not a classifier, not loadable
        send.send(("error", (400, str(error))))  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - the interpreter's own errors, with or without a message
        said = str(error).splitlines()[0][:200] if str(error).strip() else "no message"
        send.send(("error", (422, f"the interpreter refused the model: {type(error).__name__}: {said}")))  # type: ignore[attr-defined]


def _time(job: Job, memory_bytes: int, send: object) -> list[float]:
    import numpy as np

    from vggedge.core.quiet import silence_native_stderr
    from vggedge.device.models import load
    from vggedge.device.runtime import ModelTooLarge, TensorsNotAllocated

    silence_native_stderr()  # the interpreter's delegate notices
    _limit_memory(memory_bytes)
    try:
        model = load(Path(job.path), threads=job.threads, runtime=job.runtime, max_io_bytes=memory_bytes)
    except ModelTooLarge as error:
        raise JobError(
            413,
            f"the model's input and output need {error.needed / 1e6:.0f} MB; "
            f"this server allows {error.allowed / 1e6:.0f} MB (--max-memory-mb)",
        ) from None
    except TensorsNotAllocated as error:  # under this process's memory limit: the model's fault, not the request's
        raise JobError(422, f"{error}; this server allows {memory_bytes / 1e6:.0f} MB (--max-memory-mb)") from None
    model.set_input(np.zeros((model.input_size, model.input_size, 3), np.uint8))
    started = time.perf_counter()
    model.invoke_once()
    send.send(("first_call", time.perf_counter() - started))  # type: ignore[attr-defined]
    if job.emulated:
        return []
    runs = job.runs
    if job.seconds:  # at least `seconds` of runs: a sub-millisecond model's median needs hundreds of samples
        runs = adaptive_runs(model.invoke_once, job.seconds, runs, cap=MAX_ADAPTIVE_RUNS)
    return time_calls(model.invoke_once, job.warmup, runs)


def die_with(parent: int, workdir: Path) -> None:
    """This process is killed when ``parent`` ends, however it ends (``kill -9``, the OOM killer): Linux's
    parent-death signal, checked once against the race where the parent died first. It also works in ``workdir``, so
    a server started later finds a child that outlived its server anyway (:func:`end_orphans`)."""
    with contextlib.suppress(OSError):
        os.chdir(workdir)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent is already gone: the signal will never come
        os._exit(1)


def end_orphans(workdir: Path, proc: Path = Path("/proc")) -> list[int]:
    """Kill this user's processes still working in ``workdir`` (a killed server's timing children) and return their
    ids. Read from ``/proc/PID/cwd``; elsewhere nothing is found."""
    ended = []
    wanted = {str(workdir), f"{workdir} (deleted)"}
    for entry in proc.glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if (
                entry.stat().st_uid == os.getuid()
                and os.readlink(entry / "cwd") in wanted
                and int(entry.name) != os.getpid()
            ):
                os.kill(int(entry.name), signal.SIGKILL)
                ended.append(int(entry.name))
    return ended


def _limit_memory(memory_bytes: int) -> None:
    """The address space capped at what this process already maps plus ``memory_bytes`` (Linux; elsewhere none)."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        mapped = _mapped_bytes()
        if mapped:
            resource.setrlimit(resource.RLIMIT_AS, (mapped + memory_bytes, mapped + memory_bytes))


def _mapped_bytes() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_available_bytes(root: Path = Path("/")) -> int | None:
    """The board's MemAvailable (``/proc/meminfo``), or None where there is none."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (root / "proc" / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None
