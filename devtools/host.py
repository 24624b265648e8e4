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
from types import SimpleNamespace
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


def service_bus_batch(
    bodies: list[bytes],
    *,
    message_ids: list[str],
    content_types: list[str | None],
    delivery_counts: list[int],
    application_properties: list[dict[str, Any]],
) -> list[func.ServiceBusMessage]:
    """Decode a batch (``cardinality="many"``) exactly like the worker does: collection data + metadata arrays."""
    converter = func.get_binding_registry().get("serviceBusTrigger")  # type: ignore[no-untyped-call]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    count = len(bodies)
    metadata = {
        "MessageIdArray": Datum(SimpleNamespace(string=message_ids), "collection_string"),
        "ContentTypeArray": Datum(SimpleNamespace(string=[c or "" for c in content_types]), "collection_string"),
        "DeliveryCountArray": Datum(SimpleNamespace(sint64=delivery_counts), "collection_sint64"),
        "EnqueuedTimeUtcArray": Datum(json.dumps([now] * count), "json"),
        "SequenceNumberArray": Datum(SimpleNamespace(sint64=list(range(1, count + 1))), "collection_sint64"),
        "UserPropertiesArray": Datum(json.dumps(application_properties), "json"),
        "ApplicationPropertiesArray": Datum(json.dumps(application_properties), "json"),
    }
    data = Datum(SimpleNamespace(bytes=bodies), "collection_bytes")
    messages: list[func.ServiceBusMessage] = converter.decode(data, trigger_metadata=metadata)
    return messages


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
        return self.deliver_batch(
            queue_name, [(body, content_type, application_properties or {}, message_id or uuid.uuid4().hex)]
        )

    def deliver_batch(self, queue_name: str, messages: list[tuple[bytes, str | None, dict[str, Any], str]]) -> bool:
        """Deliver (body, content type, application properties, message id) tuples as one invocation.

        A batch function gets them all at once (a list); a single-message function gets them one by one. An
        exception abandons the messages of that invocation: they are redelivered with DeliveryCount + 1, and
        dead-lettered after ``max_delivery_count``.
        """
        function_def = self._queue_function(queue_name)
        function = function_def.get_user_function()
        many = str(getattr(function_def.get_trigger(), "cardinality", "")).lower().endswith("many")
        groups = [messages] if many else [[m] for m in messages]
        completed = True
        for group in groups:
            completed = self._invoke(queue_name, function, many, group) and completed
        return completed

    def _invoke(
        self, queue_name: str, function: Any, many: bool, group: list[tuple[bytes, str | None, dict[str, Any], str]]
    ) -> bool:
        last_error = ""
        for count in range(1, self.max_delivery_count + 1):
            if many:
                argument: Any = service_bus_batch(
                    [m[0] for m in group],
                    message_ids=[m[3] for m in group],
                    content_types=[m[1] for m in group],
                    delivery_counts=[count] * len(group),
                    application_properties=[m[2] for m in group],
                )
            else:
                body, content_type, props, message_id = group[0]
                argument = service_bus_message(
                    body,
                    message_id=message_id,
                    content_type=content_type,
                    delivery_count=count,
                    application_properties=props,
                )
            self.invocations += 1
            try:
                function(argument)
                return True
            except Exception as exc:  # noqa: BLE001 - the host abandons on any exception
                last_error = f"{exc.__class__.__name__}: {exc}"
        for body, _, props, _ in group:
            self.dead_letters.append(
                DeadLettered(queue_name, body, "MaxDeliveryCountExceeded", last_error, dict(props))
            )
        return False

    def pump(self, *, honour_schedule: bool = False, limit: int = 100_000, batch_size: int = 100) -> int:
        """Deliver messages the app published to queues a function listens on (retries, queued callbacks),
        in batches of up to ``batch_size`` per queue, like the Service Bus batch trigger."""
        delivered = 0
        while delivered < limit:
            ready = self._next_ready(honour_schedule)
            if ready is None:
                return delivered
            batch = [ready]
            while len(batch) < batch_size:
                more = self._next_ready(honour_schedule, queue=ready.queue)
                if more is None:
                    break
                batch.append(more)
            self.deliver_batch(
                ready.queue,
                [(m.body, m.content_type, m.application_properties, m.message_id or uuid.uuid4().hex) for m in batch],
            )
            delivered += len(batch)
        return delivered

    def _next_ready(self, honour_schedule: bool, queue: str | None = None) -> PublishedMessage | None:
        listened = {
            resolve(f.get_trigger().queue_name, self.environ)
            for f in indexed_functions()
            if getattr(f.get_trigger(), "queue_name", None)
        }
        with self.queue._lock:
            for index, message in enumerate(self.queue.messages):
                if message.queue not in listened or (queue is not None and message.queue != queue):
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
                if self.command != "HEAD":  # a HEAD answer has the headers of a GET and no body
                    self.wfile.write(payload)

            do_POST = _handle
            do_GET = _handle
            do_OPTIONS = _handle
            do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = _Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of provider callbacks must not overflow the listen backlog


def _methods(trigger: Any) -> list[str]:
    return [getattr(m, "value", str(m)).upper() for m in trigger.methods]


def _match_route(route: str, path: str) -> dict[str, str] | None:
    pattern = "^" + re.sub(r"\{(\w+)(?::[^}]*)?\}", r"(?P<\1>[^/]+)", route.strip("/")) + "$"
    match = re.match(pattern, path.strip("/"))
    return None if match is None else match.groupdict()
