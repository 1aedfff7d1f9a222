"""`vggedge bench --serve` against hostile clients, on loopback: models that loop for ever, declare gigabytes or
exhaust memory are answered with an error within their limit while other clients are served; idle and trickling
connections cannot starve a good request; SIGTERM mid-job leaves no file; a client's mistake is a 4xx, never 500."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import Running
from helpers import convert_function as convert
from vggedge.auto.remote import BenchClient
from vggedge.core.errors import UserError
from vggedge.device.server import is_loopback, load_or_create_token


@pytest.fixture(scope="module")
def huge_input_model() -> bytes:
    """A model of a few hundred bytes whose input alone is 1x8000x8000x3 float32: 768 MB."""
    return convert(lambda x: x[:, 0, 0, :] * 2.0, [1, 8000, 8000, 3])


@pytest.fixture(scope="module")
def memory_hungry_model() -> bytes:
    """A 3 MB input tiled to a 6 GB intermediate: its declared sizes pass, its allocation cannot."""
    from vggedge.backend.keras_env import tf

    return convert(lambda x: tf.reduce_mean(tf.tile(x, [1, 1, 1, 2000]), axis=[1, 2]), [1, 512, 512, 3])


@pytest.fixture
def guarded(tmp_path):
    server = Running(tmp_path / "token", runs=3, warmup=1, first_call_s=3.0, max_job_s=20.0, max_memory_mb=400)
    yield server
    server.stop()


def test_a_model_that_loops_for_ever_is_stopped_while_others_are_served(guarded, forever_model, tflite_bytes):
    answers = {}
    hostile = threading.Thread(target=lambda: answers.update(forever=guarded.request("POST", "/time", forever_model)))
    started = time.monotonic()
    hostile.start()
    time.sleep(0.5)
    assert guarded.request("GET", "/check")[0] == 200  # the server answers during the job
    client = BenchClient(f"http://127.0.0.1:{guarded.port}", guarded.token)
    p50, _ = client.time(tflite_bytes, threads=1, runs=3)  # busy at first: retried until the loop is stopped
    hostile.join(timeout=30)
    status, answer = answers["forever"]
    assert status == 422 and "took too long" in answer["error"], answer
    assert p50 > 0 and time.monotonic() - started < 20
    assert list(guarded.server.workdir.iterdir()) == []


def test_a_model_declaring_more_memory_than_allowed_is_refused_before_loading(guarded, huge_input_model):
    assert len(huge_input_model) < 2000
    status, answer = guarded.request("POST", "/time", huge_input_model)
    assert status == 413 and "need 768 MB" in answer["error"] and "allows 400 MB" in answer["error"], answer
    assert guarded.request("GET", "/check")[0] == 200


def test_a_model_that_exhausts_its_memory_limit_is_answered_and_the_server_stays(
    guarded, memory_hungry_model, tflite_bytes
):
    status, answer = guarded.request("POST", "/time", memory_hungry_model)
    assert status == 422, answer
    assert guarded.request("POST", "/time?runs=2", tflite_bytes)[0] == 200


def test_idle_and_trickling_connections_do_not_stop_a_good_request(tmp_path, tflite_bytes):
    server = Running(tmp_path / "token", runs=2, warmup=1, max_connections=4, header_timeout_s=2.0)
    idle: list[socket.socket] = []
    try:
        for _ in range(100):
            with_timeout = socket.socket()
            with_timeout.settimeout(0.5)
            try:
                with_timeout.connect(("127.0.0.1", server.port))
                idle.append(with_timeout)
            except OSError:
                with_timeout.close()
        trickle = socket.create_connection(("127.0.0.1", server.port))
        stop = threading.Event()

        def drip() -> None:
            for byte in b"POST /time HTTP/1.1\r\nAuthorization: Bearer x" * 10:
                if stop.wait(0.2):
                    return
                try:
                    trickle.send(bytes([byte]))
                except OSError:
                    return

        threading.Thread(target=drip, daemon=True).start()
        started = time.monotonic()
        status, answer = server.request("POST", "/time?runs=2", tflite_bytes)
        assert status == 200, answer
        assert time.monotonic() - started < 10
        time.sleep(2.5)  # past the header deadline: the trickling client has been cut
        trickle.settimeout(2)
        try:
            ended = trickle.recv(100)
        except ConnectionResetError:
            ended = b""
        assert ended == b"" or ended.startswith(b"HTTP/1.0 4"), ended
        assert len(server.server.connections) <= 4
        stop.set()
    finally:
        for sock in idle:
            sock.close()
        server.stop()


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("threads=%C2%B2", "threads must be a whole number"),
        ("runs=" + "9" * 5000, "runs must be a whole number"),
        ("seconds=-1", "seconds must be a whole number"),
    ],
)
def test_odd_numbers_are_400_not_500(guarded, tflite_bytes, query, words):
    status, answer = guarded.request("POST", f"/time?{query}", tflite_bytes)
    assert status == 400 and words in answer["error"]


def test_sigterm_mid_job_stops_the_server_and_leaves_no_file(tmp_path, forever_model):
    command = [sys.executable, "-m", "vggedge", "bench", "--serve", "--port", "0", "--token-file", str(tmp_path / "t")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    port = int(first.split("127.0.0.1:")[1].split()[0])
    token = (tmp_path / "t").read_text().strip()
    folders = list(Path(tempfile.gettempdir()).glob(f"vggedge-serve-{process.pid}-*"))
    assert len(folders) == 1 and oct(folders[0].stat().st_mode & 0o777) == "0o700"
    sender = threading.Thread(
        target=lambda: BenchClient(f"http://127.0.0.1:{port}", token, timeout_s=30)._exchange(
            "POST", "/time", forever_model
        ),
        daemon=True,
    )
    sender.start()
    deadline = time.monotonic() + 20
    while not list(folders[0].iterdir()) and time.monotonic() < deadline:  # the model received: a job runs
        time.sleep(0.05)
    assert list(folders[0].iterdir())
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err
    assert not folders[0].exists()


def test_a_killed_servers_folder_is_removed_at_the_next_start(tmp_path):
    stale = Path(tempfile.mkdtemp(prefix="vggedge-serve-4194303-"))  # above any pid this machine hands out
    (stale / "model.tflite").write_bytes(b"left behind")
    server = Running(tmp_path / "token")
    try:
        assert not stale.exists()
    finally:
        server.stop()


def test_odd_token_files_are_refused_in_one_line(tmp_path):
    real = tmp_path / "real"
    load_or_create_token(real)
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "folder").mkdir()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" * 20)
    binary.chmod(0o600)
    for name, words in [
        ("link", "symbolic link"),
        ("dangling", "symbolic link"),
        ("folder", "not a regular file"),
        ("binary", "no usable token"),
    ]:
        with pytest.raises(UserError, match=words):
            load_or_create_token(tmp_path / name)


def test_loopback_is_all_of_127_and_ipv6():
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")


def test_an_ipv6_loopback_server_answers(tmp_path, tflite_bytes):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    from vggedge.device.server import ServerOptions, start

    server, token, _ = start(ServerOptions(host="::1", port=0, token_file=tmp_path / "token", runs=2, warmup=1))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = BenchClient(f"http://[::1]:{server.server_address[1]}", token)
        assert client.check()["environment"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_gives_up_on_a_server_that_stays_busy(guarded, tflite_bytes, monkeypatch):
    from vggedge.auto import remote
    from vggedge.core.errors import DeviceError

    monkeypatch.setattr(remote, "BUSY_WAIT_S", 2.0)
    guarded.server.job.acquire()
    try:
        client = BenchClient(f"http://127.0.0.1:{guarded.port}", guarded.token)
        started = time.monotonic()
        with pytest.raises(DeviceError, match="stayed busy"):
            client.time(tflite_bytes, threads=1, runs=2)
        assert time.monotonic() - started < 6
    finally:
        guarded.server.job.release()
    assert os.path.isdir(guarded.server.workdir)
