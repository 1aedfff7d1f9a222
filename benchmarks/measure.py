"""Run one command in a child process and measure it: wall time and peak memory of its whole process tree.

Shared by every benchmark that runs work in its own process (each recipe, the float32 reference, each
peer conversion, each data-scale run), so they all measure the same way. Output goes to temporary
files, not pipes (a child that writes more than a pipe holds cannot block), the child gets its own
process group (a memory cap stops grandchildren too), and peak memory is the larger of the sampled
tree total (a converter may run as a grandchild) and the child's own high-water mark (``VmHWM``, read
while it runs). Not ``wait4``'s ``ru_maxrss``: Linux carries the forking parent's resident size into the
child's, so a benchmark that holds a model of its own saw every child at least as large as itself.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path


@dataclasses.dataclass
class ChildRun:
    exit_code: int
    wall_s: float
    peak_rss_gb: float
    stdout: str
    stderr: str
    capped: bool  # stopped for passing the memory cap

    def last_error_line(self, limit: int = 140) -> str:
        return (self.stderr.strip().splitlines() or ["?"])[-1][:limit]


def run_measured(
    command: list[str], cwd: Path | None = None, cap_gb: float | None = None, env: dict[str, str] | None = None
) -> ChildRun:
    """Run ``command``; with ``cap_gb``, kill its process group once the tree's resident memory passes it."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True)
        # First read at once: a child that only prints a line may be gone before the first tree walk ends.
        sampled, high_water, capped = 0.0, high_water_gb(child.pid), False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            high_water = max(high_water, high_water_gb(child.pid))
            sampled = max(sampled, tree_rss_gb(child.pid))
            if cap_gb is not None and sampled > cap_gb:
                os.killpg(child.pid, signal.SIGKILL)
                _, status, usage = os.wait4(child.pid, 0)
                capped = True
                break
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return ChildRun(
        exit_code=child.returncode,
        wall_s=round(time.perf_counter() - started, 1),
        # ru_maxrss only when the child ended before it could be read: an upper bound (see above), never a zero
        peak_rss_gb=round(max(sampled, high_water) or usage.ru_maxrss / 1024**2, 3),
        stdout=stdout,
        stderr=stderr,
        capped=capped,
    )


def high_water_gb(pid: int) -> float:
    """The kernel's peak resident size of ``pid`` since it started its program (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def tree_rss_gb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9
