"""Start ``vggedge ARGS`` as the two workers of a MultiWorkerMirroredStrategy cluster on loopback and wait for both.

    python tests/cluster.py LOGS_FOLDER OUT_ROOT -- optimize ...   (without --out: each worker gets OUT_ROOT/<role>)

Each worker gets its own TF_CONFIG (free loopback ports), its own --out (``chief``, ``worker``) and its own log
(``LOGS_FOLDER/<role>.log``). Exits 0 when both did, else 1 with both logs' tails: one command for one slot of the
suite's long runs (tests/heavy.py), which run commands, not process groups."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROLES = ("chief", "worker")
TIMEOUT_S = 900


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def main(logs: Path, out_root: Path, args: list[str]) -> int:
    hosts = [f"localhost:{port}" for port in free_ports(len(ROLES))]
    base = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    workers = []
    for index, role in enumerate(ROLES):
        config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        command = [sys.executable, "-m", "vggedge", *args, "--out", str(out_root / role)]
        with (logs / f"{role}.log").open("w") as log:
            env = {**base, "TF_CONFIG": config}
            workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [worker.wait(timeout=TIMEOUT_S) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    if codes != [0] * len(ROLES):
        for role in ROLES:
            print(f"--- {role} ---\n" + (logs / f"{role}.log").read_text(errors="replace")[-2000:])
        return 1
    return 0


if __name__ == "__main__":
    separator = sys.argv.index("--")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[separator + 1 :]))
