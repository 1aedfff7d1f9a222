"""`vggedge bench --serve`'s last gaps, each as an attacker or an unlucky operator found it: a force-killed server's
timing child, headers that cost memory before the token is read, a body trickled to hold the one job, a body held
in memory, smuggling-style framing, HTML and 5xx answers to a client's mistakes, a token in the log, a planted
symlink under the private folder's prefix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import Running, start_bench_server
from vggedge.device import server as server_module


def peak_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server answered and closed before taking everything
            sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def workers_in(folder: Path) -> list[int]:
    """Processes working in ``folder`` (the timing children: they chdir to the server's private folder)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(entry / "cwd").removesuffix(" (deleted)") == str(folder):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_force_killed_server_takes_its_timing_child_with_it(tmp_path, forever_model):
    """kill -9 of the server while it times a model that never ends: the child dies with it (parent-death
    signal), and the next server removes the folder."""
    process, url, token = start_bench_server(tmp_path / "token")
    folder = next(Path(tempfile.gettempdir()).glob(f"vggedge-serve-{process.pid}-*"))
    port = int(url.rsplit(":", 1)[1])
    request = (
        f"POST /time HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(forever_model)}\r\n\r\n"
    ).encode() + forever_model
    threading.Thread(target=raw_exchange, args=(port, request, 60), daemon=True).start()
    deadline = time.monotonic() + 30
    while not workers_in(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    children = workers_in(folder)
    assert children, "no timing child started"
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists() and not zombie(pid)]
    assert folder.exists()  # a kill -9 leaves the folder: the next server removes it
    later = Running(tmp_path / "token")
    try:
        assert not folder.exists()
    finally:
        later.stop()


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_a_restarted_server_ends_what_still_works_in_a_killed_servers_folder(tmp_path):
    stale = Path(tempfile.mkdtemp(prefix="vggedge-serve-4194303-"))  # above any pid this machine hands out
    orphan = subprocess.Popen(["sleep", "120"], cwd=stale)  # stands for a timing child that outlived its server
    server = Running(tmp_path / "token")
    try:
        assert orphan.wait(timeout=10) == -signal.SIGKILL and not stale.exists()
    finally:
        server.stop()
        orphan.kill()


def test_a_planted_symlink_under_the_prefix_neither_stops_the_server_nor_is_followed(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    planted = [
        Path(tempfile.gettempdir()) / "vggedge-serve-4194301-x",
        Path(tempfile.gettempdir()) / "vggedge-serve-4194300-y",
    ]
    os.symlink("/nonexistent/anywhere", planted[0])  # dangling
    os.symlink(target, planted[1])  # to someone's folder
    try:
        server = Running(tmp_path / "token")
        server.stop()
        assert (target / "keep.txt").read_text() == "mine"
        assert not str(server.server.workdir).startswith(str(planted[0]))
    finally:
        for link in planted:
            link.unlink(missing_ok=True)


def test_a_header_flood_without_a_token_costs_the_server_almost_nothing(tmp_path, tflite_bytes):
    """30 connections, each 99 headers of 65 KB and no token (592 MB before): each is refused with a JSON 431
    after 16 KB, the server's peak memory grows by a few MB, and a good request is served after."""
    process, url, token = start_bench_server(tmp_path / "token")
    port = int(url.rsplit(":", 1)[1])
    try:
        time.sleep(0.5)
        before = peak_mb(process.pid)
        flood = (
            b"GET /check HTTP/1.1\r\nHost: x\r\n"
            + b"".join(f"X-Pad-{i}: ".encode() + b"a" * 65_000 + b"\r\n" for i in range(99))
            + b"\r\n"
        )
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(raw_exchange(port, flood))) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        grew = peak_mb(process.pid) - before
        refused = [status_and_json(answer) for answer in answers if answer.startswith(b"HTTP/")]
        assert refused and all(status in (431, 503) for status, _ in refused), refused[:3]
        assert any(status == 431 and "16384 bytes" in body["error"] for status, body in refused)
        assert grew < 20, f"the server's peak grew by {grew:.0f} MB"
        good = raw_exchange(
            port, f"GET /check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode(), 5
        )
        assert good.startswith(b"HTTP/1.0 200") or good.startswith(b"HTTP/1.1 200"), good[:80]
    finally:
        process.kill()
        process.wait()


def test_a_large_body_goes_to_disk_not_into_the_servers_memory(tmp_path):
    """200 MB declared and sent (a flatbuffer's identifier, then zeros): the server's peak grows by the chunk it
    reads at a time, not by the body."""
    process, url, token = start_bench_server(tmp_path / "token")
    port = int(url.rsplit(":", 1)[1])
    try:
        time.sleep(0.5)
        before = peak_mb(process.pid)
        size = 200_000_000
        head = f"POST /time HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {size}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(head.encode() + b"\0\0\0\0TFL3")
            block = bytes(1 << 20)
            sent = 8
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                sock.sendall(piece)
                sent += len(piece)
            answer = sock.recv(65536)
        assert answer.split()[1] in (b"400", b"422"), answer[:200]  # zeros are no model: refused, not crashed
        grew = peak_mb(process.pid) - before
        assert grew < 30, f"the server's peak grew by {grew:.0f} MB for a 200 MB body"
    finally:
        process.kill()
        process.wait()


def test_a_trickling_body_is_cut_by_its_real_rate_and_frees_the_job(tmp_path, tflite_bytes, monkeypatch):
    """Declare 599 MB, send the identifier and then 4 bytes a second: cut once the grace and what actually came
    are used up (before: 10 s + the declared size at 1 MB/s, 609 s), after which the next model is timed."""
    monkeypatch.setattr(server_module, "BODY_GRACE_S", 1.5)
    server = Running(tmp_path / "token", runs=2, warmup=0)
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                f"POST /time HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
                f"Content-Length: 599000000\r\n\r\n".encode()
                + b"\0\0\0\0TFL3"
            )
            answer = b""
            while time.monotonic() - started < 20:
                try:
                    sock.sendall(b"\0" * 4)
                    sock.settimeout(1.0)
                    answer += sock.recv(65536)
                    if not answer or answer.endswith(b"}\n"):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
        cut_after = time.monotonic() - started
        assert cut_after < 6, f"a trickling client held the job for {cut_after:.1f} s"
        # The watchdog closes the connection first; the handler then wakes, removes its file and frees the job: a
        # client told 503 comes back after its Retry-After, as a real one does, and is timed within a few seconds.
        for _ in range(4):
            status, answer = server.request("POST", "/time", tflite_bytes)
            if status != 503:
                break
            time.sleep(1.0)
        assert status == 200 and answer["latency_ms"]["p50"] > 0, answer
        assert time.monotonic() - started < 12
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("request_head", "status", "words"),
    [
        ("POST /time HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 20\r\n", 400, "more than one Content-Length"),
        ("POST /time HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 400, "not Transfer-Encoding"),
        ("PUT /time HTTP/1.1\r\n", 405, "Unsupported method"),
        ("GET /" + "a" * 70_000 + " HTTP/1.1\r\n", 431, "request line and headers"),
        ("GET /check HTTP/9.9\r\n", 400, "version"),
        ("NONSENSE\r\n", 400, "Bad request"),
    ],
)
def test_a_clients_framing_mistakes_are_json_4xx(tmp_path, request_head, status, words):
    server = Running(tmp_path / "token")
    try:
        head = request_head.replace("\r\n", f"\r\nAuthorization: Bearer {server.token}\r\n", 1)
        got, body = status_and_json(raw_exchange(server.port, head.encode() + b"Host: x\r\n\r\n"))
        assert got == status and words in body["error"], (got, body)
    finally:
        server.stop()


def test_a_token_in_the_url_and_escapes_in_the_path_never_reach_the_log(tmp_path, capfd):
    server = Running(tmp_path / "token")
    try:
        server.request("GET", f"/check?token={server.token}&threads=2")
        raw_exchange(server.port, b"GET /\x1b]52;c;aGk=\x07 HTTP/1.1\r\nHost: x\r\n\r\n")
    finally:
        server.stop()
    log = capfd.readouterr().err
    assert server.token not in log and "token=…" in log and "threads=2" in log
    assert "\x1b" not in log and "\\x1b]52" in log
