"""The other end of ``vggedge bench --serve``: send a TFLite file to a device and get its latency back.

Used by ``optimize --recipe auto --time-on http://HOST:PORT`` to time every candidate on the board it is
for. Every failure is a :class:`UserError` naming the server and what it said, so a search stops with one
line (before any work, from :meth:`BenchClient.check`) instead of a traceback. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from vggedge.core.errors import DeviceError

BUSY_RETRIES = 30  # a 503 (another job) is retried after its Retry-After, this many times
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
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        for _ in range(BUSY_RETRIES + 1):
            request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                    return self._json(response.read())
            except urllib.error.HTTPError as error:
                said = self._error_text(error)
                if error.code == 503:
                    time.sleep(float(error.headers.get("Retry-After") or 2))
                    continue
                if error.code == 401:
                    raise DeviceError(f"--time-on {self.url} refused the token (401): check --time-on-token") from None
                raise DeviceError(f"--time-on {self.url} answered {error.code}: {said}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise DeviceError(f"--time-on {self.url} does not answer: {reason}") from None
        raise DeviceError(f"--time-on {self.url} stayed busy with other jobs; try again when it is free")

    def _json(self, raw: bytes) -> dict:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or "environment" not in data:
            raise DeviceError(f"--time-on {self.url} answered, but not as `vggedge bench --serve` does")
        return data

    @staticmethod
    def _error_text(error: urllib.error.HTTPError) -> str:
        try:
            return str(json.loads(error.read()).get("error", ""))[:200]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
            return error.reason or ""

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
