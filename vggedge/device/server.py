"""``vggedge bench --serve``: a small HTTP server that times TFLite files on the device, for device-in-the-loop work.

The automatic search (``optimize --recipe auto --time-on http://PI:8765``) sends each candidate here and
gets back the latency this board measured, with the board's state. It is a service on a network, so it is
built to take only what it needs (TVM's RPC server is the warning: its docs say it allows arbitrary file
writes and remote code execution):

- binds to 127.0.0.1 unless ``--host`` says otherwise (reach it through ``ssh -L`` by default);
- every request carries ``Authorization: Bearer <token>``; the token is generated on first start, kept in a
  file of mode 0600 and printed once; a wrong or missing one is 401 (compared in constant time);
- ``POST /time`` accepts only a TFLite flatbuffer (file identifier ``TFL3``; anything else 400, refused from its
  first bytes), at most ``max_bytes`` (413, refused from the header before the body is read), one job at a time
  (another gets 503 with Retry-After); the body is streamed to a private folder (``mkdtemp``: 0700, a random name
  no one can plant in advance) a chunk at a time, never held in memory, under a name the server chooses, and
  deleted after timing; the client never chooses a path and never sends code, only query numbers;
- every model is loaded and timed in a child process (:mod:`vggedge.device.timing_job`) with a memory limit
  (``--max-memory-mb``, default three quarters of the board's MemAvailable; a model whose declared input and output
  alone exceed it is refused, 413) and a wall-clock limit (its first call within ``first_call_s``, the rest within
  a budget from that call's time, capped at ``max_job_s``): a model that loops for ever, needs too much memory or
  crashes the interpreter is answered 422 with the reason while the server keeps serving. The child dies with the
  server however the server ends (Linux's parent-death signal: ``kill -9`` and the OOM killer included), and works
  in the private folder, so the next server ends any that outlived its server anyway;
- at most ``max_connections`` connections at once: a new one past that takes the place of the oldest one still
  sending its headers, or is refused at once (503); a request's line and headers are cut at
  :data:`MAX_HEADER_BYTES` (431) before the token is read, so headers never hold more than that times the
  connections; the headers have a total deadline, and the body a deadline that moves only with the bytes actually
  received (:data:`BODY_GRACE_S`, then ``min_upload_rate``): a trickling client is cut in seconds, whatever size it
  declared;
- the token, the route, the numbers, the size and the one-job check all come from the headers, before any body
  is read (a client that sends ``Expect: 100-continue`` hears ``100 Continue`` only then); one Content-Length,
  never two and never a chunked body (how requests are smuggled past a proxy);
- every answer is JSON, a client's mistake a 4xx (an unknown method 405, a broken request line 400), never a 5xx
  or an HTML page; the log escapes what a client sent and shows no query value but the known numbers (a token put
  in a URL is not logged); Ctrl-C, SIGTERM and SIGHUP stop it cleanly, the private folder removed, and a killed
  server's folder removed at the next start (only this user's real folders: a planted symbolic link is passed over).

Endpoints: ``GET /check`` (this board: environment and device check), ``POST /time?threads=N&runs=R&seconds=S``
(at least R runs and at least S seconds of them).
No TensorFlow, only the standard library's ``http.server``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hmac
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from vggedge.core import defaults
from vggedge.core.errors import UserError
from vggedge.core.formats import FORMATS, HEAD_BYTES
from vggedge.core.formatting import printable
from vggedge.core.keywords import ServeKeywords, default_of
from vggedge.core.metrics import latency_summary
from vggedge.device.check import device_check, snapshot
from vggedge.device.environment import describe_environment, emulation
from vggedge.device.runtime import Runtime, default_threads, find_runtime
from vggedge.device.timing_job import Job, JobError, JobLimits, end_orphans, memory_available_bytes, run_job

MAX_RUNS = 1000
MAX_SECONDS = 30
MAX_DIGITS = 12  # a query number or Content-Length longer than this is refused before int() sees it
WORKDIR_PREFIX = "vggedge-serve-"
# The request line and every header of one request, in bytes: the token's header and a client's usual dozen fit
# many times over; 99 headers of 65 KB each (what http.server alone allows) took the server to 592 MB for 30
# connections. With at most ``max_connections`` connections, headers never hold more than this times that count.
MAX_HEADER_BYTES = 16_384
BODY_GRACE_S = 10.0  # a body's first bytes may take this long; then it must keep up ``min_upload_rate``
BODY_CHUNK = 1 << 20  # the body goes to disk in chunks of this size: never held whole in the server's memory
QUERY_KEYS = ("threads", "runs", "seconds")  # the query's only keys: the log shows their values and no other's


@dataclasses.dataclass
class ServerOptions:
    host: str = default_of(ServeKeywords, "host")
    port: int = default_of(ServeKeywords, "port")
    token_file: Path | None = None
    max_bytes: int = int(default_of(ServeKeywords, "max_mb") * 1e6)
    threads: list[int] | None = None  # the thread count used when a request names none: the first of these
    runtime: str | None = None
    runs: int = defaults.RUNS
    warmup: int = defaults.WARMUP
    max_memory_mb: float | None = None  # None: three quarters of MemAvailable at start (1 GB where unknown)
    first_call_s: float = 60.0
    max_job_s: float = default_of(ServeKeywords, "max_job_seconds")
    max_connections: int = default_of(ServeKeywords, "max_connections")
    header_timeout_s: float = 10.0  # the request line and headers, in all
    min_upload_rate: float = 1_000_000.0  # bytes/s: the body's deadline is 10 s plus its size at this rate

    def memory_bytes(self) -> int:
        if self.max_memory_mb is not None:
            return int(self.max_memory_mb * 1e6)
        available = memory_available_bytes()
        return int(available * 0.75) if available else 1_000_000_000


def default_token_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "vggedge" / "bench-token"


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created): read the token file, or create it with mode 0600 (never readable by others). The file is
    opened without following a link, and must be a regular file of this user's, private, holding UTF-8 text."""
    path = Path(path)
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")
        return token, True
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block
        descriptor = os.open(path, flags)
    except OSError as error:
        reason = "a symbolic link" if error.errno == errno.ELOOP else (error.strerror or str(error))
        raise UserError(f"token file {path} cannot be used ({reason}): delete it for a new token") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        raise UserError(f"token file {path} is not a regular file: delete it for a new token")
    with os.fdopen(descriptor, "rb") as handle:
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise UserError(f"token file {path} belongs to another user: delete it for a new token")
        if info.st_mode & 0o077:
            raise UserError(f"{path} is readable by other users: chmod 600 {path} (or delete it for a new token)")
        raw = handle.read(4096)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        token = ""
    if len(token) < 16 or not token.isprintable():
        raise UserError(f"{path} holds no usable token: delete it and start again for a new one")
    return token, False


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


def remove_stale_workdirs(root: Path | None = None) -> list[Path]:
    """Private folders left by a server that was killed (its process gone), and any timing child still working in
    one: removed and ended at start, so neither a received model nor its job outlives its server. Only this user's
    real folders (a symbolic link or a file someone else planted under the prefix is passed over), named for a
    process that no longer runs."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        pid = folder.name[len(WORKDIR_PREFIX) :].split("-")[0]
        try:
            info = folder.lstat()
        except OSError:
            continue
        mine = not hasattr(os, "getuid") or info.st_uid == os.getuid()
        if not pid.isascii() or not pid.isdigit() or not stat.S_ISDIR(info.st_mode) or not mine:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            end_orphans(folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:
            continue
    return removed


class HeadersTooLarge(Exception):
    """The request line and headers passed :data:`MAX_HEADER_BYTES`."""


class HeaderLimitedReader:
    """The connection's reader, counting what the request line and headers take: past ``left`` bytes it raises
    :class:`HeadersTooLarge` before a header is held whole. ``left = None`` for the body."""

    def __init__(self, raw: object) -> None:
        self.raw = raw
        self.left: int | None = MAX_HEADER_BYTES

    def readline(self, size: int = -1) -> bytes:
        if self.left is None:
            return self.raw.readline(size)  # type: ignore[attr-defined]
        cap = self.left + 1 if size is None or size < 0 else min(size, self.left + 1)
        line = self.raw.readline(cap)  # type: ignore[attr-defined]
        self.left -= len(line)
        if self.left < 0:
            raise HeadersTooLarge
        return line

    def __getattr__(self, name: str) -> object:
        return getattr(self.raw, name)


@dataclasses.dataclass
class Connection:
    """One open connection: its socket, when it must be done by, and whether it is still sending headers (the
    kind a new connection may push out when every place is taken)."""

    sock: socket.socket
    opened: float
    deadline: float
    in_headers: bool = True


class BenchServer(ThreadingHTTPServer):
    """Holds what every request needs (the token, the limits, the one-job lock, the private folder) and bounds the
    connections: at most ``max_connections``, each cut at its deadline by a watchdog thread."""

    daemon_threads = True
    request_queue_size = 16

    def __init__(self, options: ServerOptions, token: str, runtime: Runtime) -> None:
        self.options = options
        self.token = token
        self.runtime = runtime
        self.memory_bytes = options.memory_bytes()
        self.job = threading.Lock()
        remove_stale_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))  # mode 0700
        self.jobs_done = 0
        self.refused = 0  # connections refused at once (every place taken by requests past their headers)
        self.connections: dict[int, Connection] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        if ":" in options.host.strip("[]"):
            self.address_family = socket.AF_INET6
        super().__init__((options.host.strip("[]"), options.port), BenchHandler)
        threading.Thread(target=self._watch, name="vggedge-serve-watchdog", daemon=True).start()

    def get_request(self) -> tuple[socket.socket, object]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)  # out of descriptors: wait for one instead of spinning on the listening socket
            raise

    def verify_request(self, request: socket.socket, client_address: object) -> bool:
        """A place for this connection: a free one, or the oldest one still sending headers; else refused at once."""
        with self.lock:
            if len(self.connections) >= self.options.max_connections:
                waiting = [c for c in self.connections.values() if c.in_headers]
                if not waiting:
                    self.refused += 1
                    with contextlib.suppress(OSError):
                        request.sendall(_refusal())
                    return False
                oldest = min(waiting, key=lambda c: c.opened)
                self.connections.pop(id(oldest.sock), None)
                _cut(oldest.sock)
            now = time.monotonic()
            self.connections[id(request)] = Connection(request, now, now + self.options.header_timeout_s)
        return True

    def shutdown_request(self, request: socket.socket) -> None:
        with self.lock:
            self.connections.pop(id(request), None)
        super().shutdown_request(request)

    def set_deadline(self, request: socket.socket, seconds: float | None, in_headers: bool) -> None:
        """The connection's next deadline (None: none, while a job runs under its own limits)."""
        with self.lock:
            connection = self.connections.get(id(request))
            if connection is not None:
                connection.deadline = time.monotonic() + seconds if seconds is not None else float("inf")
                connection.in_headers = in_headers

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            with self.lock:
                late = [c for c in self.connections.values() if c.deadline < now]
                for connection in late:
                    self.connections.pop(id(connection.sock), None)
            for connection in late:
                _cut(connection.sock)

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _cut(sock: socket.socket) -> None:
    """End a connection from outside its thread: its blocked read returns, its handler finishes."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _refusal() -> bytes:
    body = b'{"error": "too many connections: try again shortly"}\n'
    return (
        b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class BenchHandler(BaseHTTPRequestHandler):
    server: BenchServer
    timeout = 60  # per read; the watchdog's deadlines bound a request in all
    server_version = "vggedge-bench"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile = HeaderLimitedReader(self.rfile)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        """One request, its request line and headers within :data:`MAX_HEADER_BYTES` (else 431, JSON)."""
        self.rfile.left = MAX_HEADER_BYTES  # type: ignore[attr-defined]
        self.requestline, self.request_version, self.command = "", "HTTP/1.0", None
        try:
            super().handle_one_request()
        except HeadersTooLarge:
            self.close_connection = True
            self._send(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                {"error": f"the request line and headers take more than {MAX_HEADER_BYTES} bytes"},
            )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, an unknown method, a long line) as JSON, and as
        4xx: a client's mistake is never a 5xx (an unknown method is 405, not 501)."""
        status, headers = HTTPStatus(code), {}
        if status == HTTPStatus.NOT_IMPLEMENTED:
            status, headers = HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, POST"}
        elif status >= 500:
            status = HTTPStatus.BAD_REQUEST
        self.request_version = "HTTP/1.0"  # a status line and headers even for a request line too broken to say
        self.close_connection = True
        self._send(status, {"error": printable(message or status.phrase)}, headers)

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self._handle(self._check)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._time)

    def _handle(self, action: object) -> None:
        self.server.set_deadline(self.connection, self.server.options.header_timeout_s, in_headers=False)
        self.rfile.left = None  # type: ignore[attr-defined] # the headers are in: the body is read by its own rules
        try:
            self._authenticate()
            self._framing()
            self._send(HTTPStatus.OK, action())  # type: ignore[operator]
        except RequestError as error:
            self.close_connection = True  # the body may be unread: this connection cannot carry another request
            self._send(error.status, {"error": error.message}, error.headers)
        except Exception as error:  # noqa: BLE001 - a server answers every request, whatever went wrong
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"[:300]})

    def _framing(self) -> None:
        """One way to know where the body ends: a single Content-Length, never two (which one a proxy believed is
        how requests are smuggled) and never a chunked body."""
        if len(self.headers.get_all("Content-Length") or []) > 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "more than one Content-Length header")
        if self.headers.get("Transfer-Encoding") is not None:
            raise RequestError(HTTPStatus.BAD_REQUEST, "send the body with Content-Length, not Transfer-Encoding")

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
        length = self._content_length()
        if not self.server.job.acquire(blocking=False):  # busy: said before the body is read, not after
            self.close_connection = True
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "busy timing another model", {"Retry-After": "2"})
        descriptor, name = tempfile.mkstemp(suffix=".model", dir=self.server.workdir)
        try:
            self._receive(descriptor, length)
            self.server.set_deadline(self.connection, None, in_headers=False)  # the job has its own limits
            return self._time_model(name, length, threads, runs, seconds)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
            self.server.job.release()

    def _time_model(self, name: str, size: int, threads: int, runs: int, seconds: int) -> dict:
        emulated = emulation()
        options = self.server.options
        job = Job(name, threads, runs, seconds, options.warmup, options.runtime, bool(emulated))
        limits = JobLimits(self.server.memory_bytes, options.first_call_s, options.max_job_s)
        before = snapshot()
        try:
            timings = run_job(job, limits)
        except JobError as error:
            raise RequestError(HTTPStatus(error.status), error.message.replace(name, "the model")) from None
        check = device_check(before, snapshot(), model_bytes=size)
        self.server.jobs_done += 1
        self.server.set_deadline(self.connection, options.header_timeout_s, in_headers=False)  # the answer
        environment = describe_environment(self.server.runtime, threads)
        environment.device_check = check
        return {
            "latency_ms": dataclasses.asdict(latency_summary(timings)) if timings else None,
            "threads": threads,
            "size_bytes": size,
            "emulated": emulated,
            "environment": dataclasses.asdict(environment),
        }

    def _content_length(self) -> int:
        """The body's size from the header, refused (and the connection closed, the body unread) when absent, not a
        plain number or above the cap."""
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the model as the request body with Content-Length")
        if len(length) > MAX_DIGITS or int(length) > self.server.options.max_bytes:
            self.close_connection = True  # the body stays unread
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the model is {length[:MAX_DIGITS]}{'…' if len(length) > MAX_DIGITS else ''} bytes; "
                f"this server takes at most {self.server.options.max_bytes}",
            )
        return int(length)

    def _receive(self, descriptor: int, length: int) -> None:
        """The body into the private file ``descriptor``, a chunk at a time (never whole in memory), at a real rate:
        its deadline moves with the bytes actually received (:data:`BODY_GRACE_S` plus what came at
        ``min_upload_rate``), so a client that declares gigabytes and trickles bytes is cut in seconds. Its first
        bytes must be a TFLite flatbuffer's."""
        rate = self.server.options.min_upload_rate
        started = time.monotonic()
        self.server.set_deadline(self.connection, BODY_GRACE_S, in_headers=False)
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        received, head = 0, b""
        with os.fdopen(descriptor, "wb") as handle:
            while received < length:
                try:
                    chunk = self.rfile.read1(min(BODY_CHUNK, length - received))  # type: ignore[attr-defined]
                except OSError:
                    chunk = b""
                if not chunk:
                    self.close_connection = True
                    raise RequestError(
                        HTTPStatus.BAD_REQUEST,
                        f"the body ended after {received} of {length} bytes (or came slower than {rate / 1e6:g} MB/s)",
                    )
                handle.write(chunk)
                received += len(chunk)
                checked = len(head) >= min(HEAD_BYTES, length)
                head = head if checked else (head + chunk)[:HEAD_BYTES]
                if not checked and len(head) >= min(HEAD_BYTES, length):
                    self._check_head(head, length)
                spent = time.monotonic() - started
                self.server.set_deadline(self.connection, BODY_GRACE_S + received / rate - spent, in_headers=False)

    def _check_head(self, head: bytes, length: int) -> None:
        """The body's first bytes name a format this server can time from one file (TFLite, ONNX), else 400."""
        chosen = next((f for f in FORMATS if f.matches(head)), None) if length >= 8 else None
        if chosen is None or chosen.companions:
            self.close_connection = True
            if chosen is not None:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{chosen.description} is {len(chosen.companions) + 1} "
                                   "files and a request carries one: send the model's TFLite or ONNX file")  # fmt: skip
            known = " nor ".join(f.description for f in FORMATS)
            raise RequestError(HTTPStatus.BAD_REQUEST, f"not a model vggedge runs (neither {known})")

    def _number(self, query: dict[str, list[str]], key: str, default: int, low: int, high: int) -> int:
        values = query.get(key)
        if not values:
            return default
        value = values[0]
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_DIGITS or not low <= int(value) <= high:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} must be a whole number from {low} to {high}")
        return int(value)

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
        """One line per request on stderr: escaped (a client's path may hold terminal escapes), cut, and with no
        query value but the known numbers' (a client that put its token in the URL does not see it logged)."""
        text = format % tuple(redacted(a) if isinstance(a, str) else a for a in args)
        sys.stderr.write(f"{self.address_string()} {printable(text, 300)}\n")
        sys.stderr.flush()


def redacted(text: str) -> str:
    """``text`` with every query value but those of :data:`QUERY_KEYS` replaced by ``…``."""

    def value(match: re.Match) -> str:
        return match.group(0) if match.group(1) in QUERY_KEYS else f"{match.group(1)}=…"

    return re.sub(r"(?<=[?&;])([^=&;\s]*)=[^&;\s\"]*", value, text)


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
    """Serve until Ctrl-C, SIGTERM (``systemctl stop``, ``kill``) or SIGHUP, then remove the private folder."""
    server, token, created = start(options)
    host, port = server.server_address[:2]
    token_file = options.token_file or default_token_file()
    shown = f"[{host}]" if ":" in host else host
    print(f"vggedge bench server on http://{shown}:{port} ({server.runtime.name} {server.runtime.version})", flush=True)
    if created:
        print(f"token (shown once, kept in {token_file}): {token}", flush=True)
    else:
        print(f"token: in {token_file}", flush=True)
    print(
        f"limits: {options.max_connections} connections, models up to {options.max_bytes / 1e6:.0f} MB, "
        f"{server.memory_bytes / 1e6:.0f} MB of memory and {options.max_job_s:.0f} s per job",
        flush=True,
    )
    if not is_loopback(host):
        print(f"listening beyond this machine ({host}): anyone with the token can time models here", flush=True)
    stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP all stop the server the same way. SIGINT's handler is installed explicitly: a
    process started from a background shell inherits SIGINT as ignored, and Ctrl-C would then do nothing."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
