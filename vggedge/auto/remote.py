"""The other end of ``vggedge bench --serve``: send a TFLite file to a device and get its latency back.

Used by ``optimize --recipe auto --time-on http://HOST:PORT`` to time every candidate on the board it is
for. Every failure is a :class:`UserError` naming the server and what it said, so a search stops with one
line (before any work, from :meth:`BenchClient.check`) instead of a traceback. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from urllib.parse import urlparse

from vggedge.core.errors import DeviceError

BUSY_RETRIES = 30  # a 503 (another job, or every connection taken) is retried after its Retry-After, this many times
BUSY_WAIT_S = 300.0  # ... and for at most this long in all
MAX_RETRY_AFTER_S = 10.0  # a server's Retry-After is obeyed up to this
EXPECT_WAIT_S = 5.0  # how long a POST waits for `100 Continue` (or an early refusal) before sending its body
MIN_TIMING_S = 1  # the server times each file at least this long (a sub-millisecond model needs hundreds of runs)


class BenchClient:
    def __init__(self, url: str, token: str | None, timeout_s: float = 600.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DeviceError(
                f"--time-on takes the address of `vggedge bench --serve` (http://HOST:PORT), not {url!r} "
                "(per-layer latency tables are not supported yet)"
            )
        if not token:
            raise DeviceError(
                "--time-on needs the bench server's token: --time-on-token or VGGEDGE_BENCH_TOKEN "
                "(the server printed it on first start and keeps it in ~/.config/vggedge/bench-token on the device)"
            )
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: bytes | None = None) -> dict:
        """One request, retried while the server is busy (bounded in count and time); every failure one line."""
        started = time.monotonic()
        for _ in range(BUSY_RETRIES + 1):
            try:
                status, headers, raw = self._exchange(method, path, body)
            except (OSError, http.client.HTTPException) as error:
                raise DeviceError(f"--time-on {self.url} does not answer: {error}") from None
            if status == 200:
                return self._json(raw)
            said = self._error_text(raw, headers)
            if status == 503:
                wait = min(MAX_RETRY_AFTER_S, max(0.1, _seconds(headers.get("Retry-After"), 2.0)))
                if time.monotonic() - started + wait > BUSY_WAIT_S:
                    break
                time.sleep(wait)
                continue
            if status == 401:
                raise DeviceError(f"--time-on {self.url} refused the token (401): check --time-on-token")
            raise DeviceError(f"--time-on {self.url} answered {status}: {said}")
        raise DeviceError(f"--time-on {self.url} stayed busy with other jobs; try again when it is free")

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one exchange. A POST says ``Expect: 100-continue`` and sends its body only
        when the server says go on (or stays silent for :data:`EXPECT_WAIT_S`): a busy or refusing server answers
        from the headers, and a 600 MB model is not sent to be thrown away."""
        parsed = urlparse(self.url)
        kind = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        connection = kind(parsed.hostname, parsed.port, timeout=self.timeout_s)
        try:
            connection.putrequest(method, (parsed.path.rstrip("/") or "") + path)
            connection.putheader("Authorization", f"Bearer {self.token}")
            if body is not None:
                connection.putheader("Content-Type", "application/octet-stream")
                connection.putheader("Content-Length", str(len(body)))
                connection.putheader("Expect", "100-continue")
            connection.endheaders()
            if body is not None and not _early_answer(connection.sock):
                connection.send(body)
            response = http.client.HTTPResponse(connection.sock, method=method)
            response.begin()  # skips an interim `100 Continue`
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def _json(self, raw: bytes) -> dict:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or "environment" not in data:
            raise DeviceError(f"--time-on {self.url} answered, but not as `vggedge bench --serve` does")
        return data

    @staticmethod
    def _error_text(raw: bytes, headers: dict) -> str:
        try:
            return str(json.loads(raw).get("error", ""))[:200]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return raw[:200].decode("utf-8", "replace")

    def check(self) -> dict:
        """The device's environment and board state; raises before a search starts if the server is unusable."""
        return self._request("GET", "/check")

    def time(self, flatbuffer: bytes, threads: int | None, runs: int) -> tuple[float, str]:
        """(p50 ms, where it was timed) of one TFLite file on the device."""
        query = f"?runs={runs}&seconds={MIN_TIMING_S}" + (f"&threads={threads}" if threads else "")
        answer = self._request("POST", "/time" + query, flatbuffer)
        latency = answer.get("latency_ms") or {}
        if answer.get("emulated") or latency.get("p50") is None:
            raise DeviceError(f"--time-on {self.url} is emulated ({answer.get('emulated')}): its timings mean nothing")
        environment = answer["environment"]
        where = (
            f"{environment.get('device') or 'device'} via {self.url} ({environment.get('runtime')} "
            f"{environment.get('runtime_version')}, {answer.get('threads')} threads)"
        )
        return float(latency["p50"]), where


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _early_answer(sock: socket.socket) -> bool:
    """After a POST's headers: True when the server answered with a final status before the body (a refusal);
    an interim ``100 Continue`` is consumed and means go on; silence for :data:`EXPECT_WAIT_S` means go on too."""
    readable, _, _ = select.select([sock], [], [], EXPECT_WAIT_S)
    if not readable:
        return False
    head = sock.recv(12, socket.MSG_PEEK)
    if not head.startswith(b"HTTP/1.") or head[9:12] != b"100":
        return bool(head)
    seen = b""
    while not seen.endswith(b"\r\n\r\n"):  # the interim response's status line and its (empty) headers
        byte = sock.recv(1)
        if not byte:
            return True
        seen += byte
    return False
