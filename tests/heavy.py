"""The suite's long runs as child processes, two at a time, started when the session begins.

`optimize --recipe all` on the tiny VGG16 (``all_runs``) and on each model form (``form_runs``) are
most of the suite's work. In one process they ran one after the other, and the TFLite converter (a third
of a run) uses one core, so a 2-core machine sat half idle. Here each run is its own `vggedge` process
(exactly what a user starts), two of them at once, while the short tests go on in the pytest process;
a test that needs a run waits for it. Every run's output goes to a log file, quoted when it fails.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONCURRENT_RUNS = 2  # the CI machine's cores
RUN_TIMEOUT_S = 1500  # a run that takes this long is broken (the longest takes ~4 minutes on 2 cores)
# The runs yield the CPU to the pytest process: no test waited for a run (each finished minutes before the tests that
# read it), so the in-process tests were the suite's critical path while they got two thirds of a core beside two
# runs. At a lower priority the runs take what the tests leave, and the cores stay busy to the end.
RUN_NICENESS = 10


@dataclass
class RunOutcome:
    out: Path
    log: Path
    seconds: float


class RunFailed(AssertionError):
    pass


class HeavyRuns:
    """A small pool of child processes; :meth:`submit` queues a run, :meth:`result` waits for it."""

    def __init__(self, root: Path, workers: int = CONCURRENT_RUNS) -> None:
        self.root = root
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="heavy-run")
        self.futures: dict[str, concurrent.futures.Future[RunOutcome]] = {}
        self.children: set[subprocess.Popen] = set()
        self.closed = False
        # The environment as the session set it, taken now: the runs start from pool threads while tests go on,
        # and a test that monkeypatches a variable for itself (the training precision, TF_CONFIG) must not leak
        # into a child that happens to start during it.
        self.env = child_env()

    def submit(self, name: str, commands: Sequence[Sequence[str]], out: Path) -> None:
        """Run ``commands`` one after the other in one slot (e.g. train a form, then optimize it)."""
        if name not in self.futures:
            self.futures[name] = self.pool.submit(self._run, name, [list(map(str, c)) for c in commands], out)

    def _run(self, name: str, commands: list[list[str]], out: Path) -> RunOutcome:
        log = self.root / f"{name}.log"
        started = time.perf_counter()
        with log.open("w") as stream:
            for command in commands:
                if self.closed:
                    raise RunFailed(f"{name}: the session ended before it ran")
                stream.write(f"$ {' '.join(command)}\n")
                stream.flush()
                child = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=self.env)
                os.setpriority(os.PRIO_PROCESS, child.pid, RUN_NICENESS)  # its own children (the cluster) inherit it
                self.children.add(child)
                try:
                    code = child.wait(timeout=RUN_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    code = "timeout"
                finally:
                    self.children.discard(child)
                if code != 0:
                    raise RunFailed(f"{name}: `{' '.join(command[:4])} …` ended with {code}:\n{tail(log)}")
        return RunOutcome(out, log, time.perf_counter() - started)

    def result(self, name: str) -> RunOutcome:
        return self.futures[name].result()

    def timings(self) -> list[str]:
        """'name: seconds' of every run that finished, for the session's summary (where the suite's time goes)."""
        done = [(n, f.result().seconds) for n, f in self.futures.items() if f.done() and not f.exception()]
        return [f"{name}: {seconds:.0f} s" for name, seconds in sorted(done, key=lambda item: -item[1])]

    def close(self) -> None:
        """Stop what still runs (an aborted session): no child outlives the suite."""
        self.closed = True
        for child in list(self.children):
            child.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


# TensorFlow's thread pools in each run: one thread each. Two runs and the pytest process share the CI machine's two
# cores, so a run's second thread only waits for a core and spins while it waits (measured: docs/development.md).
# tests/forms.py trains the model forms on the default pools, as their figures were measured; the pytest process
# keeps them too (on one thread its in-process tests took longer than the runs gained).
RUN_TF_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def child_env() -> dict[str, str]:
    # The suite's isolated cache and offline setting (conftest sets them) pass on; the children's own
    # TensorFlow lines go to their log files.
    return {**os.environ, "VGGEDGE_VERBOSE": "0", "PYTHONUNBUFFERED": "1", **RUN_TF_THREADS}


def vggedge(*args: object) -> list[str]:
    return [sys.executable, "-m", "vggedge", *map(str, args)]


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
