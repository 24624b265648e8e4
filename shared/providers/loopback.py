"""Loopback provider: a stand-in SMS gateway for local runs and tests (``CHANNEL_PROVIDER=loopback``).

It speaks a deliberately small protocol to ``devtools.emulators.loopback_provider``: ``POST {url}/messages``
(JSON, bearer key) returns ``{"id": ...}``; callbacks are JSON posts to our callback route signed with
``X-Loopback-Signature = hex(HMAC-SHA256(key, url + body))``. Never use it in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import requests

from shared.domain import reconcile
from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import (
    HttpReply,
    InboundEvent,
    InboundHttpRequest,
    ProviderCallback,
    ProviderEvent,
    SendRequest,
    SendResult,
    StatusEvent,
    StatusKind,
)
from shared.domain.reconcile import Lookup, SentQuery

NAME = "loopback"
STATUS_MAP = {
    "sent": StatusKind.SENT,
    "delivered": StatusKind.DELIVERED,
    "read": StatusKind.OPENED,
    "failed": StatusKind.FAILED,
}


def sign(key: str, url: str, body: bytes) -> str:
    return hmac.new(key.encode(), url.encode() + body, hashlib.sha256).hexdigest()


class LoopbackProvider:
    name = NAME
    replay_window: timedelta | None = None

    def __init__(self, *, base_url: str, key: str, callback_url: str, session: requests.Session, timeout: float = 10.0):
        self._base = base_url.rstrip("/")
        self._key = key
        self._callback_url = callback_url
        self._session = session
        self._timeout = timeout

    def send(self, request: SendRequest) -> SendResult:
        try:
            response = self._session.post(
                f"{self._base}/messages",
                json={
                    "to": request.to,
                    "body": request.body,
                    "status_callback": request.status_callback_url,
                    "idempotency_key": request.idempotency_key,
                },
                headers={"Authorization": f"Bearer {self._key}"},
                timeout=(3.05, self._timeout),
            )
        except requests.ConnectionError as exc:
            raise SendFailedTransient(
                f"loopback provider unreachable: {exc.__class__.__name__}", retry_safe=True
            ) from None
        except requests.Timeout:
            raise SendFailedTransient("loopback provider timed out", retry_safe=False) from None
        if response.status_code in (200, 201, 202):
            return SendResult(provider_message_id=str(response.json()["id"]), status="accepted")
        if response.status_code == 400:
            error = response.json().get("error", {})
            raise SendRejected(
                str(error.get("code", "invalid")),
                str(error.get("message", "rejected")),
                opted_out=error.get("code") == "opted_out",
            )
        raise SendFailedTransient(f"loopback provider HTTP {response.status_code}", retry_safe=True)

    def lookup(self, query: SentQuery) -> Lookup:
        """The loopback gateway keeps no message list: it cannot tell. An ambiguous loopback send stays ambiguous
        until its delivery report (the gateway always sends one, carrying the activity) resolves it."""
        return reconcile.unknown("the loopback gateway offers no message lookup")

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        url = self._callback_url + (f"?{request.raw_query}" if request.raw_query else "")
        given = request.header("x-loopback-signature") or ""
        if not hmac.compare_digest(sign(self._key, url, request.body).encode(), given.encode("utf-8", "replace")):
            raise CallbackRejected(403, "missing or invalid X-Loopback-Signature")
        try:
            payload = json.loads(request.body)
            kind = payload["type"]
            message_id = str(payload["message_id"])
        except (ValueError, KeyError, TypeError):
            raise CallbackRejected(400, "loopback callback must be JSON with type and message_id") from None
        events: list[ProviderEvent] = []
        if kind == "status":
            status = str(payload.get("status", "")).lower()
            events.append(
                StatusEvent(
                    message_id,
                    STATUS_MAP.get(status, StatusKind.IGNORED),
                    status,
                    activity_hint=request.query.get("activity"),
                    error_code=payload.get("error_code"),
                    event_id=f"{message_id}:{status}",
                )
            )
        elif kind == "inbound":
            try:
                events.append(
                    InboundEvent(
                        message_id, str(payload["from"]), str(payload["to"]), str(payload["text"]), event_id=message_id
                    )
                )
            except KeyError as exc:
                raise CallbackRejected(400, f"inbound callback is missing {exc.args[0]}") from None
        else:
            raise CallbackRejected(400, f"unknown loopback callback type {str(kind)[:32]!r}")
        return ProviderCallback(events=events, reply=HttpReply(204))
