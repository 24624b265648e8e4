"""Shared machinery for the loopback HTTP emulators.

Each emulator runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread,
records every request (Authorization values redacted), supports fault
injection (``inject``) and a global per-request ``latency``.

Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["EmulatorBase", "Fault", "Incoming", "RecordedRequest", "Response", "serve_forever"]

_REDACTED_HEADERS = {"authorization", "proxy-authorization", "cookie"}


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the emulator received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    parsed_body: Any
    received_at: float
    target: str = ""  # raw request target (path plus query) as received


@dataclass
class Incoming:
    """A request handed to an emulator's router."""

    method: str
    target: str  # raw request target (path + optional "?query")
    path: str  # percent-decoding NOT applied
    query_string: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    concurrency: int = 1  # in-flight HTTP requests when this one arrived

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    """A response produced by an emulator's router."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the connection without answering

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Fault:
    """A programmed answer for the next ``remaining`` matching requests."""

    method: str
    pattern: re.Pattern[str]
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    remaining: int | None
    delay: float
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method not in ("*", method.upper()):
            return False
        return self.pattern.search(target) is not None


class DropConnection(Exception):
    """Raised inside a router to close the connection without an answer."""


def _encode_body(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), "application/json; charset=utf-8"


def _parse_body(content_type: str, body: bytes) -> Any:
    if not body:
        return None
    ctype = content_type.split(";", 1)[0].strip().lower()
    try:
        if ctype == "application/json" or ctype.endswith("+json"):
            return json.loads(body.decode("utf-8"))
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            return {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    except (ValueError, UnicodeDecodeError):
        return None
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of callbacks must not overflow the listen backlog (SYN retries take seconds)
    allow_reuse_address = True
    emulator: EmulatorBase


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: never print requests (they may carry secrets)."""

    def _dispatch(self) -> None:
        self.server.emulator._serve(self)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PATCH = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_HEAD = _dispatch
    do_OPTIONS = _dispatch


class EmulatorBase:
    """Threaded loopback HTTP server with request log and fault injection."""

    server_name = "emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._log_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._in_flight = 0
        self.latency: float = 0.0
        self.http_request_count = 0
        self.max_seen_concurrency = 0
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.server_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    # -- lifecycle -------------------------------------------------------
    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- log / faults ----------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the request log (thread-safe copy)."""
        with self._log_lock:
            return list(self._requests)

    def reset(self) -> None:
        """Clear the request log, counters, faults and latency."""
        with self._log_lock:
            self._requests.clear()
            self._faults.clear()
            self.http_request_count = 0
            self.max_seen_concurrency = 0
        self.latency = 0.0

    def inject(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status``.

        ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched
        (``re.search``) in the request target (path plus query).
        ``status=0`` closes the connection without an answer (after
        ``delay`` seconds), simulating a timeout or reset.  ``body`` may be
        bytes, str or a JSON-serialisable value.  ``times=None`` means for
        ever.  Returns the ``Fault`` (its ``hits`` counts uses).
        """
        raw, ctype = _encode_body(body)
        hdrs = list((headers or {}).items())
        if ctype and not any(k.lower() == "content-type" for k, _ in hdrs):
            hdrs.append(("Content-Type", ctype))
        fault = Fault(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            body=raw,
            headers=hdrs,
            remaining=times,
            delay=delay,
        )
        with self._log_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._log_lock:
            self._faults.clear()

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._log_lock:
            for fault in self._faults:
                if fault.matches(method, target):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.status == 0:
            return Response(0, drop=True)
        return Response(fault.status, fault.body, list(fault.headers))

    # -- request handling --------------------------------------------------
    def _route(self, request: Incoming) -> Response:  # pragma: no cover
        raise NotImplementedError

    def _read_body(self, handler: _Handler) -> bytes:
        length = handler.headers.get("Content-Length")
        if length:
            return handler.rfile.read(int(length))
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size_line = handler.rfile.readline().strip()
                size = int(size_line.split(b";", 1)[0] or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        return b""

    def _serve(self, handler: _Handler) -> None:
        body = self._read_body(handler)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        split = urlsplit(handler.path)
        logged_headers = {
            k: ("<redacted>" if k.lower() in _REDACTED_HEADERS else v) for k, v in handler.headers.items()
        }
        record = RecordedRequest(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=logged_headers,
            body=body,
            parsed_body=_parse_body(headers.get("content-type", ""), body),
            received_at=time.time(),
            target=handler.path,
        )
        with self._log_lock:
            self._requests.append(record)
            self.http_request_count += 1
            self._in_flight += 1
            concurrency = self._in_flight
            self.max_seen_concurrency = max(self.max_seen_concurrency, concurrency)
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            request = Incoming(
                method=handler.command,
                target=handler.path,
                path=split.path,
                query_string=split.query,
                headers=headers,
                body=body,
                concurrency=concurrency,
            )
            fault = self._take_fault(handler.command, handler.path)
            if fault is not None:
                response = self._fault_response(fault)
            else:
                try:
                    response = self._route(request)
                except DropConnection:
                    response = Response(0, drop=True)
            self._send(handler, response)
        finally:
            with self._log_lock:
                self._in_flight -= 1

    def _send(self, handler: _Handler, response: Response) -> None:
        if response.drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        handler.send_response(response.status, phrase)
        for name, value in response.headers:
            handler.send_header(name, value)
        no_body = response.status in {204, 304} or 100 <= response.status < 200
        if not no_body:
            handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if not no_body and handler.command != "HEAD":
            handler.wfile.write(response.body)


class Servable(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def serve_forever(emulator: Servable, extra_lines: Sequence[str] = ()) -> int:
    """The command line of every emulator: print its URL (and any extra lines), serve until interrupted, stop."""
    # Ctrl-C stops it even when started from a context that ignores SIGINT (a background job of a non-interactive
    # shell passes SIG_IGN on to its children): the emulator's own command line always answers it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(emulator.url, flush=True)
    for line in extra_lines:
        print(line, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
