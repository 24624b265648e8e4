"""The callback queue's message format (one format): every event of one acknowledged callback in one message.

    {"provider": "twilio", "events": [{"type": "status" | "inbound", "event": {...dataclass fields...}}]}

Written for queued callbacks and for inline callbacks Dataverse could not take. Decoding also reads the single-event
``{"provider", "type", "event"}`` messages earlier versions wrote for the inline fallback, so messages already on
the queue during an upgrade are not lost; nothing writes that form any more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from shared.domain.models import InboundEvent, ProviderEvent, StatusEvent, StatusKind


def _item(event: ProviderEvent) -> dict[str, Any]:
    data = asdict(event)
    if isinstance(event, StatusEvent):
        data["kind"] = event.kind.value
        return {"type": "status", "event": data}
    return {"type": "inbound", "event": data}


def encode_events(provider_name: str, events: Sequence[ProviderEvent]) -> bytes:
    return json.dumps({"provider": provider_name, "events": [_item(e) for e in events]}).encode()


def _event_from(item: Mapping[str, Any]) -> ProviderEvent:
    data = dict(item["event"])
    if item["type"] == "status":
        data["kind"] = StatusKind(data["kind"])
        return StatusEvent(**data)
    if item["type"] == "inbound":
        return InboundEvent(**data)
    raise ValueError(f"unknown queued callback type {item['type']!r}")


def decode_events(body: bytes) -> list[tuple[str, ProviderEvent]]:
    """The events of one queue message; raises ValueError / KeyError / TypeError on anything malformed."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("a queued callback is a JSON object")
    provider = str(document["provider"])
    items = document.get("events", [document])  # without "events": the earlier single-event form, read only
    if not isinstance(items, list):
        raise ValueError("'events' must be a list")
    return [(provider, _event_from(item)) for item in items]
