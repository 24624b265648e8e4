"""Azure Event Grid webhook delivery, as a plain HTTP endpoint sees it (no Event Grid trigger, no SDK).

- Two schemas: the Event Grid schema (always a JSON array of ``{id, topic, subject, eventType, eventTime, data,
  dataVersion, metadataVersion}``) and CloudEvents 1.0 (``application/cloudevents+json``: one object;
  ``application/cloudevents-batch+json``: an array of ``{specversion, id, source, type, subject, time, data}``).
- Two handshakes: the Event Grid schema validates a subscription with a
  ``Microsoft.EventGrid.SubscriptionValidationEvent`` (answer 200 ``{"validationResponse": <validationCode>}``);
  CloudEvents uses the HTTP ``OPTIONS`` abuse protection (``WebHook-Request-Origin`` → ``WebHook-Allowed-Origin``
  and ``Allow: POST``).
- Event Grid webhooks carry no signature: the subscription sends a secret in the ``X-Channel-Secret`` header (a
  static delivery attribute marked secret), checked here in constant time before the body is read. ``?secret=...``
  in the URL is still accepted for subscriptions made by hand, but discouraged (request logs and proxies record it).

Field names are matched case-insensitively: Microsoft's samples changed from PascalCase to camelCase over time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.domain.errors import CallbackRejected
from shared.domain.models import HttpReply, InboundHttpRequest

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
SECRET_PARAMETER = "secret"  # noqa: S105 - the name of the query parameter, not a secret
SECRET_HEADER = "x-channel-secret"  # noqa: S105 - the header name, not a secret
MAX_BODY_BYTES = 1024 * 1024 + 64 * 1024  # Event Grid batches stay under 1 MB; leave room for the envelope


@dataclass(frozen=True)
class GridEvent:
    """One event, whatever the schema it arrived in."""

    id: str
    type: str
    subject: str
    data: Mapping[str, Any]
    schema: str  # "eventgrid" | "cloudevents"


def field(mapping: Mapping[str, Any], name: str) -> Any:
    """``mapping[name]`` ignoring case (exact match first)."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def text_field(mapping: Mapping[str, Any], name: str) -> str | None:
    value = field(mapping, name)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def check_secret(request: InboundHttpRequest, expected: str) -> None:
    """401 when no secret came, 403 when it is wrong (constant-time comparison), 503 when none is configured.

    The ``X-Channel-Secret`` header wins; the ``secret`` query parameter is the discouraged fallback.
    """
    missing = secret_missing(request, expected)
    if missing is not None:
        raise missing


def secret_missing(request: InboundHttpRequest, expected: str) -> CallbackRejected | None:
    """Raises 503 (none configured) or 403 (wrong secret); returns the 401 to raise later when none was sent, so a
    caller can still answer a subscription handshake, which carries no event; ``None`` when the secret is right."""
    if not expected:
        raise CallbackRejected(503, "ACS_EVENTGRID_SECRET is not available; Event Grid deliveries are refused")
    given = request.header(SECRET_HEADER) or request.query.get(SECRET_PARAMETER)
    if not given:
        return CallbackRejected(
            401, "missing secret: the Event Grid subscription must send the X-Channel-Secret delivery attribute"
        )
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise CallbackRejected(403, "invalid Event Grid secret")
    return None


def options_handshake(request: InboundHttpRequest) -> HttpReply:
    """CloudEvents 1.0 webhook abuse protection (the subscription is created only if this answers 200)."""
    origin = (request.header("webhook-request-origin") or "").strip()
    if not origin:
        raise CallbackRejected(400, "OPTIONS without WebHook-Request-Origin")
    if len(origin) > 255 or any(c in origin for c in "\r\n"):
        raise CallbackRejected(400, "invalid WebHook-Request-Origin")
    headers = {"WebHook-Allowed-Origin": origin, "Allow": "POST"}
    if request.header("webhook-request-rate"):
        headers["WebHook-Allowed-Rate"] = "*"
    return HttpReply(200, b"", "text/plain", headers)


def parse_events(body: bytes) -> list[GridEvent]:
    """Both schemas, single event or batch. Raises ``CallbackRejected(400)`` for a body that is not events."""
    if len(body) > MAX_BODY_BYTES:
        raise CallbackRejected(413, "Event Grid request body too large")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRejected(400, "Event Grid request body is not JSON") from None
    items = document if isinstance(document, list) else [document]
    events: list[GridEvent] = []
    for item in items:
        if not isinstance(item, dict):
            raise CallbackRejected(400, "Event Grid request must be an event or an array of events")
        cloud = field(item, "specversion") is not None
        event_type = text_field(item, "type" if cloud else "eventType")
        if not event_type:
            raise CallbackRejected(400, "event without eventType / type")
        data = field(item, "data")
        if isinstance(data, str):  # CloudEvents may carry JSON data as a string
            try:
                data = json.loads(data)
            except ValueError:
                data = None
        events.append(
            GridEvent(
                id=text_field(item, "id") or "",
                type=event_type,
                subject=text_field(item, "subject") or "",
                data=data if isinstance(data, dict) else {},
                schema="cloudevents" if cloud else "eventgrid",
            )
        )
    return events


def validation_reply(events: list[GridEvent]) -> HttpReply | None:
    """The answer to a subscription validation event, if the request is one."""
    for event in events:
        if event.type.lower() == VALIDATION_EVENT.lower():
            code = text_field(event.data, "validationCode")
            if not code:
                raise CallbackRejected(400, "SubscriptionValidationEvent without validationCode")
            return HttpReply(200, json.dumps({"validationResponse": code}).encode(), "application/json")
    return None
