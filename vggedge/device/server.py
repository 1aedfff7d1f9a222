"""``vggedge bench --serve``: a small HTTP server that times TFLite files on the device, for device-in-the-loop work.

The automatic search (``optimize --recipe auto --time-on http://PI:8765``) sends each candidate here and
gets back the latency this board measured, with the board's state. It is a service on a network, so it is
built to take only what it needs (TVM's RPC server is the warning: its docs say it allows arbitrary file
writes and remote code execution):

- binds to 127.0.0.1 unless ``--host`` says otherwise (reach it through ``ssh -L`` by default);
- every request carries ``Authorization: Bearer <token>``; the token is generated on first start, kept in a
  file of mode 0600 and printed once; a wrong or missing one is 401 (compared in constant time);
- ``POST /time`` accepts only a TFLite flatbuffer (file identifier ``TFL3``; anything else 400), at most
  ``max_bytes`` (413, refused from the header before the body is read), one job at a time (another gets 503
  with Retry-After); the file goes to a private temporary folder under a name the server chooses and is
  deleted after timing; the client never chooses a path and never sends code, only query numbers;
- a bad request gets its status and a JSON error, and the server keeps serving; Ctrl-C stops it cleanly.

Endpoints: ``GET /check`` (this board: environment and device check), ``POST /time?threads=N&runs=R&seconds=S``
(at least R runs and at least S seconds of them).
No TensorFlow, only the standard library's ``http.server``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from vggedge.core import defaults
from vggedge.core.errors import UserError
from vggedge.core.metrics import adaptive_runs, latency_summary, time_calls
from vggedge.device.check import device_check, snapshot
from vggedge.device.environment import describe_environment, emulation
from vggedge.device.runtime import TFLITE_MAGIC, Runtime, TFLiteModel, default_threads, find_runtime

MAX_RUNS = 1000
MAX_SECONDS = 30
MAX_ADAPTIVE_RUNS = 5000


@dataclasses.dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token_file: Path | None = None
    max_bytes: int = 600_000_000
    threads: list[int] | None = None  # the thread count used when a request names none: the first of these
    runtime: str | None = None
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP


def default_token_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "vggedge" / "bench-token"


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created): read the token file, or create it with mode 0600 (never readable by others)."""
    path = Path(path)
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise UserError(f"{path} is readable by other users: chmod 600 {path} (or delete it for a new token)")
        token = path.read_text().strip()
        if len(token) < 16:
            raise UserError(f"{path} holds no usable token: delete it and start again for a new one")
        return token, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token, True


class BenchServer(ThreadingHTTPServer):
    """Holds what every request needs: the token, the limits, the one-job lock, the private folder."""

    daemon_threads = True

    def __init__(self, options: ServerOptions, token: str, runtime: Runtime) -> None:
        self.options = options
        self.token = token
        self.runtime = runtime
        self.job = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix="vggedge-serve-"))  # mode 0700
        self.jobs_done = 0
        super().__init__((options.host, options.port), BenchHandler)

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class BenchHandler(BaseHTTPRequestHandler):
    server: BenchServer
    timeout = 60  # a client that stops sending mid-request does not hold a thread for ever
    server_version = "vggedge-bench"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self._handle(self._check)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._time)

    def _handle(self, action: object) -> None:
        try:
            self._authenticate()
            self._send(HTTPStatus.OK, action())  # type: ignore[operator]
        except RequestError as error:
            self.close_connection = True  # the body may be unread: this connection cannot carry another request
            self._send(error.status, {"error": error.message}, error.headers)
        except Exception as error:  # noqa: BLE001 - a server answers every request, whatever went wrong
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"[:300]})

    def _authenticate(self) -> None:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.strip().encode(), self.server.token.encode()):
            raise RequestError(HTTPStatus.UNAUTHORIZED, "missing or wrong token", {"WWW-Authenticate": "Bearer"})

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        url = urlparse(self.path)
        return url.path, parse_qs(url.query)

    def _check(self) -> dict:
        path, _ = self._route()
        if path != "/check":
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {path} (GET /check, POST /time)")
        now = snapshot()
        environment = describe_environment(self.server.runtime, self._default_threads())
        environment.device_check = device_check(now, now, model_bytes=0)
        return {"environment": dataclasses.asdict(environment), "jobs_done": self.server.jobs_done}

    def _time(self) -> dict:
        path, query = self._route()
        if path != "/time":
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path} (POST /time)")
        threads = self._number(query, "threads", self._default_threads(), 1, 256)
        runs = self._number(query, "runs", self.server.options.runs, 1, MAX_RUNS)
        seconds = self._number(query, "seconds", 0, 0, MAX_SECONDS)
        body = self._read_body()
        if body[4:8] != TFLITE_MAGIC:
            raise RequestError(HTTPStatus.BAD_REQUEST, "not a TFLite model (no TFL3 flatbuffer identifier)")
        if not self.server.job.acquire(blocking=False):
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "busy timing another model", {"Retry-After": "2"})
        try:
            return self._time_model(body, threads, runs, seconds)
        finally:
            self.server.job.release()

    def _time_model(self, body: bytes, threads: int, runs: int, seconds: int) -> dict:
        emulated = emulation()
        descriptor, name = tempfile.mkstemp(suffix=".tflite", dir=self.server.workdir)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(body)
            before = snapshot()
            try:
                model = TFLiteModel(Path(name), threads=threads, runtime=self.server.runtime)
            except UserError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, str(error).replace(name, "the model")) from None
            model.set_input(_zeros(model.input_size))
            if seconds and not emulated:
                # At least `seconds` of runs: a sub-millisecond model's median needs hundreds of samples.
                runs = adaptive_runs(model.invoke_once, seconds, runs, cap=MAX_ADAPTIVE_RUNS)
            timings = [] if emulated else time_calls(model.invoke_once, self.server.options.warmup, runs)
            del model
            check = device_check(before, snapshot(), model_bytes=len(body))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        self.server.jobs_done += 1
        environment = describe_environment(self.server.runtime, threads)
        environment.device_check = check
        return {
            "latency_ms": dataclasses.asdict(latency_summary(timings)) if timings else None,
            "threads": threads,
            "size_bytes": len(body),
            "emulated": emulated,
            "environment": dataclasses.asdict(environment),
        }

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the model as the request body with Content-Length")
        if int(length) > self.server.options.max_bytes:
            self.close_connection = True  # the body stays unread
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the model is {int(length)} bytes; this server takes at most {self.server.options.max_bytes}",
            )
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body ended before Content-Length bytes")
        return body

    def _number(self, query: dict[str, list[str]], key: str, default: int, low: int, high: int) -> int:
        values = query.get(key)
        if not values:
            return default
        if not values[0].isdigit() or not low <= int(values[0]) <= high:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} must be a whole number from {low} to {high}")
        return int(values[0])

    def _default_threads(self) -> int:
        return (self.server.options.threads or [default_threads()])[0]

    def _send(self, status: HTTPStatus, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(payload) + "\n").encode()
        with contextlib.suppress(OSError):  # the client may have gone: nothing to answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server signature
        line = "".join(c if c.isprintable() else "?" for c in format % args)  # a client's path may hold escapes
        sys.stderr.write(f"{self.address_string()} {line}\n")
        sys.stderr.flush()


def _zeros(size: int) -> object:
    import numpy as np

    return np.zeros((size, size, 3), np.uint8)


def start(options: ServerOptions) -> tuple[BenchServer, str, bool]:
    """The server, listening (not yet serving), with its token and whether the token was just created."""
    token, created = load_or_create_token(options.token_file or default_token_file())
    runtime = find_runtime(options.runtime)
    try:
        server = BenchServer(options, token, runtime)
    except OSError as error:
        raise UserError(f"cannot listen on {options.host}:{options.port}: {error.strerror or error}") from None
    return server, token, created


def serve_forever(options: ServerOptions) -> None:
    server, token, created = start(options)
    host, port = server.server_address[:2]
    token_file = options.token_file or default_token_file()
    print(f"vggedge bench server on http://{host}:{port} ({server.runtime.name} {server.runtime.version})", flush=True)
    if created:
        print(f"token (shown once, kept in {token_file}): {token}", flush=True)
    else:
        print(f"token: in {token_file}", flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"listening beyond this machine ({host}): anyone with the token can time models here", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
