"""A minimal local stand-in for the Functions host, for tests and the local demo (Core Tools can't run here).

It does what the Python worker does and nothing more:
- indexes ``function_app.app`` once (``app.get_functions()``), resolves ``%SETTING%`` binding expressions;
- decodes Service Bus messages through the worker's registered ``serviceBusTrigger`` converter (so the function
  receives a real ``azure.functions.ServiceBusMessage`` with metadata) and emulates PeekLock: a raised exception
  abandons the message (redelivered with DeliveryCount+1), after ``max_delivery_count`` it is dead-lettered;
- serves HTTP triggers on a loopback port, building ``func.HttpRequest`` objects with route parameters.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.meta import Datum

from shared.adapters.memory import MemoryQueue, PublishedMessage

_INDEX: list[Any] | None = None
_INDEX_LOCK = threading.Lock()


def indexed_functions() -> list[Any]:
    """``app.get_functions()`` may only be called once per app instance: cache it for the process."""
    global _INDEX  # noqa: PLW0603
    with _INDEX_LOCK:
        if _INDEX is None:
            from function_app import app

            _INDEX = list(app.get_functions())
        return _INDEX


def resolve(expression: str, environ: dict[str, str] | None = None) -> str:
    env = environ if environ is not None else dict(os.environ)
    return re.sub(r"%([^%]+)%", lambda m: env[m.group(1)], expression)


@dataclass
class DeadLettered:
    queue: str
    body: bytes
    reason: str
    description: str
    application_properties: dict[str, Any]


def service_bus_message(
    body: bytes,
    *,
    message_id: str | None = None,
    content_type: str | None = "application/json",
    delivery_count: int = 1,
    application_properties: dict[str, Any] | None = None,
) -> func.ServiceBusMessage:
    """Decode a message exactly like the worker does, through the registered converter."""
    converter = func.get_binding_registry().get("serviceBusTrigger")  # type: ignore[no-untyped-call]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    props = json.dumps(application_properties or {})
    metadata = {
        "MessageId": Datum(message_id or uuid.uuid4().hex, "string"),
        "DeliveryCount": Datum(delivery_count, "int"),
        "EnqueuedTimeUtc": Datum(now, "string"),
        "ContentType": Datum(content_type, "string") if content_type else Datum(None, None),
        "UserProperties": Datum(props, "json"),
        "ApplicationProperties": Datum(props, "json"),
        "SequenceNumber": Datum(1, "int"),
        "LockToken": Datum(str(uuid.uuid4()), "string"),
    }
    message: func.ServiceBusMessage = converter.decode(Datum(body, "bytes"), trigger_metadata=metadata)
    return message


@dataclass
class LocalHost:
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    queue: MemoryQueue = field(default_factory=MemoryQueue)
    max_delivery_count: int = 10
    dead_letters: list[DeadLettered] = field(default_factory=list)
    invocations: int = 0

    def function(self, name: str) -> Any:
        for f in indexed_functions():
            if f.get_function_name() == name:
                return f
        raise KeyError(name)

    def _queue_function(self, queue_name: str) -> Any:
        for f in indexed_functions():
            trigger = f.get_trigger()
            if getattr(trigger, "queue_name", None) and resolve(trigger.queue_name, self.environ) == queue_name:
                return f
        raise KeyError(f"no function is triggered by queue {queue_name}")

    # --- Service Bus -----------------------------------------------------------------------------
    def deliver(
        self,
        queue_name: str,
        body: bytes,
        *,
        content_type: str | None = "application/json",
        application_properties: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Deliver one message with PeekLock semantics. True when completed, False when dead-lettered."""
        function = self._queue_function(queue_name).get_user_function()
        message_id = message_id or uuid.uuid4().hex
        last_error = ""
        for count in range(1, self.max_delivery_count + 1):
            msg = service_bus_message(
                body,
                message_id=message_id,
                content_type=content_type,
                delivery_count=count,
                application_properties=application_properties,
            )
            self.invocations += 1
            try:
                function(msg)
                return True
            except Exception as exc:  # noqa: BLE001 - the host abandons on any exception
                last_error = f"{exc.__class__.__name__}: {exc}"
        self.dead_letters.append(
            DeadLettered(queue_name, body, "MaxDeliveryCountExceeded", last_error, dict(application_properties or {}))
        )
        return False

    def pump(self, *, honour_schedule: bool = False, limit: int = 100_000) -> int:
        """Deliver messages the app published to queues a function listens on (retries, queued callbacks)."""
        delivered = 0
        while delivered < limit:
            ready = self._next_ready(honour_schedule)
            if ready is None:
                return delivered
            self.deliver(
                ready.queue,
                ready.body,
                content_type=ready.content_type,
                application_properties=ready.application_properties,
                message_id=ready.message_id,
            )
            delivered += 1
        return delivered

    def _next_ready(self, honour_schedule: bool) -> PublishedMessage | None:
        listened = {
            resolve(f.get_trigger().queue_name, self.environ)
            for f in indexed_functions()
            if getattr(f.get_trigger(), "queue_name", None)
        }
        with self.queue._lock:
            for index, message in enumerate(self.queue.messages):
                if message.queue not in listened:
                    continue
                if honour_schedule and message.scheduled_at and message.scheduled_at > datetime.now(UTC):
                    continue
                return self.queue.messages.pop(index)
        return None

    # --- HTTP ------------------------------------------------------------------------------------
    def call_http(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> func.HttpResponse:
        parts = urlsplit(url)
        path = parts.path.removeprefix("/api/")
        for f in indexed_functions():
            if not f.is_http_function():
                continue
            trigger = f.get_trigger()
            params = _match_route(trigger.route, path)
            if params is None or (trigger.methods and method.upper() not in {str(m) for m in _methods(trigger)}):
                continue
            request = func.HttpRequest(
                method=method.upper(),
                url=url,
                headers=headers or {},
                params=dict(parse_qsl(parts.query, keep_blank_values=True)),
                route_params=params,
                body=body,
            )
            self.invocations += 1
            response: func.HttpResponse = f.get_user_function()(request)
            return response
        return func.HttpResponse("no function matches this route", status_code=404)

    def serve_http(self, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
        """Serve the HTTP triggers on 127.0.0.1 (for providers and emulators that post callbacks)."""
        host = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}"
                response = host.call_http(self.command, url, headers=dict(self.headers.items()), body=body)
                payload = response.get_body() or b""
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.mimetype or "text/plain")
                for key, value in response.headers.items():
                    if key.lower() not in ("content-type", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = _handle
            do_GET = _handle
            do_OPTIONS = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


def _methods(trigger: Any) -> list[str]:
    return [getattr(m, "value", str(m)).upper() for m in trigger.methods]


def _match_route(route: str, path: str) -> dict[str, str] | None:
    pattern = "^" + re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", route.strip("/")) + "$"
    match = re.match(pattern, path.strip("/"))
    return None if match is None else match.groupdict()
