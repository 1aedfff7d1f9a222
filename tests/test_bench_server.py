"""`vggedge bench --serve` on loopback: the happy path, every refusal, one job at a time, restart, Ctrl-C."""

from __future__ import annotations

import http.client
import http.server
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import Running
from vggedge.core.errors import UserError
from vggedge.device.server import ServerOptions, load_or_create_token


@pytest.fixture
def running(tmp_path):
    server = Running(tmp_path / "config" / "bench-token", runs=5, warmup=1, max_bytes=2_000_000)
    yield server
    server.stop()


def test_binds_loopback_by_default_and_times_a_model(running, tflite_bytes):
    assert ServerOptions().host == "127.0.0.1" and running.server.server_address[0] == "127.0.0.1"
    status, answer = running.request("POST", "/time?threads=1&runs=7", tflite_bytes)
    assert status == 200, answer
    assert answer["latency_ms"]["runs"] == 7 and answer["latency_ms"]["p50"] > 0
    assert answer["threads"] == 1 and answer["size_bytes"] == len(tflite_bytes)
    assert answer["environment"]["threads"] == 1 and "device_check" in answer["environment"]
    assert list(running.server.workdir.iterdir()) == []  # the file was deleted after timing
    status, board = running.request("GET", "/check")
    assert status == 200 and board["jobs_done"] == 1 and board["environment"]["cpu"]


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_every_request_needs_the_token(running, tflite_bytes, token):
    for method, path, body in (("GET", "/check", None), ("POST", "/time", tflite_bytes)):
        status, answer = running.request(method, path, body, token=token)
        assert status == 401 and answer == {"error": "missing or wrong token"}
    assert running.server.jobs_done == 0


def test_bad_requests_are_refused_and_the_server_keeps_serving(running, tflite_bytes):
    refusals = [
        ("POST", "/time", b"#!/bin/sh\nrm -rf /\n", 400, "not a model vggedge runs"),
        ("POST", "/time", b"", 400, "not a model vggedge runs"),
        ("POST", "/time", tflite_bytes[:4000], 400, "could not be loaded"),  # TFL3, but truncated
        ("POST", "/time?threads=0", tflite_bytes, 400, "threads must be"),
        ("POST", "/time?runs=abc", tflite_bytes, 400, "runs must be"),
        ("POST", "/../../etc/passwd", tflite_bytes, 404, "no such endpoint"),
        ("GET", "/time", None, 404, "no such endpoint"),
    ]
    for method, path, body, expected, words in refusals:
        status, answer = running.request(method, path, body)
        assert status == expected and words in answer["error"], (path, status, answer)
        assert "/tmp" not in answer["error"]  # the server's own paths are not told
    assert list(running.server.workdir.iterdir()) == []
    assert running.request("POST", "/time?runs=2", tflite_bytes)[0] == 200


def test_a_model_above_the_cap_is_refused_before_its_body_is_read(tmp_path, tflite_bytes):
    small = Running(tmp_path / "token", max_bytes=1000)
    try:
        status, answer = small.request("POST", "/time", tflite_bytes)
        assert status == 413 and "at most 1000" in answer["error"]
        # A client that claims a huge body and sends none is refused at once, not waited for.
        status, answer = small.request("POST", "/time", None, headers={"Content-Length": str(10**12)})
        assert status == 413
        assert small.request("GET", "/check")[0] == 200
    finally:
        small.stop()


def test_one_job_at_a_time(running, tflite_bytes):
    running.server.job.acquire()  # a job in progress
    try:
        status, answer = running.request("POST", "/time", tflite_bytes)
        assert status == 503 and "busy" in answer["error"]
    finally:
        running.server.job.release()
    # Truly concurrent clients: each is timed or told to retry, never both at once, and nothing is left over.
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: running.request("POST", "/time?runs=200", tflite_bytes)[0], range(4)))
    assert set(statuses) <= {200, 503} and 200 in statuses
    assert running.server.jobs_done == statuses.count(200) + 0
    assert list(running.server.workdir.iterdir()) == []


def test_token_file_is_private_and_kept_across_restarts(tmp_path, tflite_bytes):
    token_file = tmp_path / "config" / "bench-token"
    first = Running(token_file)
    workdir = first.server.workdir
    first.stop()
    assert first.created and (token_file.stat().st_mode & 0o777) == 0o600
    assert not workdir.exists()  # the private folder goes with the server
    again = Running(token_file)
    try:
        assert not again.created and again.token == first.token
        assert again.request("POST", "/time?runs=2", tflite_bytes)[0] == 200
    finally:
        again.stop()


def test_a_token_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("x" * 40 + "\n")
    path.chmod(0o644)
    with pytest.raises(UserError, match="readable by other users"):
        load_or_create_token(path)


def test_serve_from_the_command_line_stops_cleanly_on_ctrl_c(tmp_path, tflite_bytes):
    command = [sys.executable, "-m", "vggedge", "bench", "--serve", "--port", "0", "--token-file", str(tmp_path / "t")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.startswith("vggedge bench server on http://127.0.0.1:"), first
        port = int(first.split("127.0.0.1:")[1].split()[0])
        assert second.startswith("token (shown once") and second.strip().endswith((tmp_path / "t").read_text().strip())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        token = (tmp_path / "t").read_text().strip()
        connection.request("POST", "/time?runs=2", body=tflite_bytes, headers={"Authorization": f"Bearer {token}"})
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_serve_refuses_model_files(cli, tmp_path):
    done = cli("bench", "--serve", str(tmp_path / "m.tflite"))
    assert done.code == 2 and "--serve times the models clients send" in done.err


def test_the_client_times_on_the_server_for_at_least_the_seconds_asked(running, tflite_bytes):
    from vggedge.auto.remote import BenchClient

    client = BenchClient(f"http://127.0.0.1:{running.port}", running.token)
    assert client.check()["environment"]["cpu"]
    p50, where = client.time(tflite_bytes, threads=1, runs=5)
    assert p50 > 0 and f"via http://127.0.0.1:{running.port}" in where and "1 threads" in where
    # seconds=1 on a sub-millisecond model: hundreds of runs, not the 5 asked for
    status, answer = running.request("POST", "/time?runs=5&seconds=1&threads=1", tflite_bytes)
    assert status == 200 and answer["latency_ms"]["runs"] > 100


class NotABenchServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>hello</html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-on", "latency-table.json", "--time-on-token", "t"], "no such file"),
        (["--time-on", "http://127.0.0.1:1", "--time-on-token", "t"], "does not answer"),
        (["--time-on", "RUNNING", "--time-on-token", "wrong-token"], "refused the token (401)"),
        (["--time-on", "OTHER", "--time-on-token", "t"], "not as `vggedge bench --serve` does"),
        (["--time-on", "RUNNING"], "needs the bench server's token"),
    ],
)
def test_time_on_that_cannot_time_stops_auto_before_any_work(cli, running, tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("VGGEDGE_BENCH_TOKEN", raising=False)
    other = http.server.HTTPServer(("127.0.0.1", 0), NotABenchServer)
    threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        urls = {"RUNNING": f"http://127.0.0.1:{running.port}", "OTHER": f"http://127.0.0.1:{other.server_port}"}
        args = [urls.get(arg, arg) for arg in args]
        done = cli("optimize", "--recipe", "auto", "--out", tmp_path / "out", "-q", *args)
    finally:
        other.shutdown()
        other.server_close()
    assert done.code == 2 and message in done.err and "Traceback" not in done.err, done.err
    assert not (tmp_path / "out").exists()


def test_time_on_belongs_to_auto(cli, tmp_path):
    done = cli("optimize", "--recipe", "int8", "--time-on", "http://127.0.0.1:1", "--out", tmp_path / "o")
    assert done.code == 2 and "use it with --recipe auto" in done.err
