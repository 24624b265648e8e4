"""The gateway behind ``CHANNEL_PROVIDER=loopback``: accepts messages and fires signed callbacks over HTTP.

``POST /messages`` (bearer key, JSON ``{to, body, status_callback}``) → ``201 {"id": "LB…"}``. With
``auto_deliver`` it then posts a ``delivered`` status callback to ``status_callback`` from a background thread,
like a real provider would. ``reply(...)`` posts an inbound message to the configured inbound URL.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.providers.loopback import sign


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


@dataclass
class LoopbackMessage:
    id: str
    to: str
    body: str
    status_callback: str
    received_at: float = 0.0  # wall clock (time.time) when the gateway accepted it


@dataclass
class LoopbackGateway:
    key: str
    auto_deliver: bool = True
    deliver_delay: float = 0.0
    reject: dict[str, tuple[str, str]] = field(default_factory=dict)  # number -> (code, message)
    messages: list[LoopbackMessage] = field(default_factory=list)
    callbacks_sent: list[tuple[str, int]] = field(default_factory=list)  # (status, http status)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[threading.Thread] = field(default_factory=list)
    _senders: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(16))
    # Like a long code's carrier limit: more than this many messages in the trailing second → 429 (0 = off).
    rate_limit: float = 0.0
    rejected_for_rate: int = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> LoopbackGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.headers.get("Authorization") != f"Bearer {gateway.key}":
                    return self._reply(401, {"error": {"code": "unauthorized", "message": "bad key"}})
                if self.path != "/messages":
                    return self._reply(404, {"error": {"code": "not_found", "message": self.path}})
                try:
                    payload = json.loads(raw)
                    to, body, callback = str(payload["to"]), str(payload["body"]), str(payload["status_callback"])
                except (ValueError, KeyError):
                    return self._reply(400, {"error": {"code": "invalid", "message": "to, body, status_callback"}})
                if to in gateway.reject:
                    code, message = gateway.reject[to]
                    return self._reply(400, {"error": {"code": code, "message": message}})
                message_id = "LB" + uuid.uuid4().hex
                with gateway._lock:
                    now = time.time()
                    if gateway.rate_limit and gateway._over_rate(now):
                        gateway.rejected_for_rate += 1
                        return self._reply(429, {"error": {"code": "rate", "message": "too many messages"}})
                    gateway.messages.append(LoopbackMessage(message_id, to, body, callback, now))
                self._reply(201, {"id": message_id, "status": "accepted"})
                if gateway.auto_deliver:
                    gateway._later(message_id, "delivered")
                return None

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _over_rate(self, now: float) -> bool:
        recent = 0
        for message in reversed(self.messages):
            if message.received_at <= now - 1.0:
                break
            recent += 1
        return recent + 1 > self.rate_limit

    def stop(self) -> None:
        self.wait_idle()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _later(self, message_id: str, status: str) -> None:
        def run() -> None:
            time.sleep(self.deliver_delay)
            with self._senders:  # at most a few callbacks in flight, like a provider's webhook workers
                for attempt in range(5):  # providers retry failed webhooks; so does this gateway
                    try:
                        if self.send_status(message_id, status) < 500:
                            return
                    except OSError:
                        pass
                    time.sleep(0.2 * (attempt + 1))

        thread = threading.Thread(target=run, daemon=True)
        with self._lock:
            self._pending.append(thread)
        thread.start()

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in self._pending if t.is_alive()]
                self._pending = pending
            if not pending or time.monotonic() > deadline:
                return
            pending[0].join(timeout=max(0.0, deadline - time.monotonic()))

    def find(self, message_id: str) -> LoopbackMessage:
        with self._lock:
            return next(m for m in self.messages if m.id == message_id)

    def send_status(self, message_id: str, status: str) -> int:
        message = self.find(message_id)
        body = json.dumps({"type": "status", "message_id": message_id, "status": status}).encode()
        code = _post(message.status_callback, body, sign(self.key, message.status_callback, body))
        with self._lock:
            self.callbacks_sent.append((status, code))
        return code

    def reply(self, inbound_url: str, sender: str, recipient: str, text: str) -> int:
        body = json.dumps(
            {"type": "inbound", "message_id": "LB" + uuid.uuid4().hex, "from": sender, "to": recipient, "text": text}
        ).encode()
        return _post(inbound_url, body, sign(self.key, inbound_url, body))


def _post(url: str, body: bytes, signature: str) -> int:
    if not url.startswith("http://127.0.0.1") and not url.startswith("http://localhost"):
        raise ValueError("the loopback gateway only calls loopback URLs")
    request = urllib.request.Request(  # noqa: S310 - loopback only, checked above
        url, data=body, method="POST", headers={"Content-Type": "application/json", "X-Loopback-Signature": signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only, checked above
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from devtools.emulators._base import serve_forever

    parser = argparse.ArgumentParser(description="Serve the loopback SMS gateway (CHANNEL_PROVIDER=loopback).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="dev-loopback-key", help="signing key (LOOPBACK_SIGNING_KEY)")
    parser.add_argument("--no-auto-deliver", action="store_true", help="do not post delivered callbacks")
    args = parser.parse_args(argv)
    gateway = LoopbackGateway(args.key, auto_deliver=not args.no_auto_deliver).start(args.port)
    return serve_forever(gateway)


if __name__ == "__main__":
    raise SystemExit(main())
