"""How each record type is stored in the state table: one codec per type (table entities hold flat primitives).

The entity layout is unchanged from earlier versions, so records written by them read back (a stored ``contract``
column from older versions is ignored: the record type is the RowKey, and delivery reports route on the key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from shared.domain.models import ActivityRef
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.state import ActivityState, SendStatus

_ACTIVITY_FIELDS = tuple(f.name for f in fields(ActivityRef))
_RTJ_FIELDS = tuple(f.name for f in fields(RtjState) if f.name != "etag")
_LISTS = ("due", "recorded")
_TIMES = ("lease_until", "flush_until", "updated_at", "attempt_until", "first_attempt_until")


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _list(raw: Any) -> list[str]:
    return [] if raw in (None, "", "[]") else list(json.loads(raw))


def _dump(items: list[str]) -> str:
    return json.dumps(items) if items else "[]"


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class ActivityCodec:
    row = "activity"

    def encode(self, state: ActivityState) -> dict[str, Any]:
        return {
            **{f"a_{name}": getattr(state.activity, name) for name in _ACTIVITY_FIELDS},
            "send_status": state.send_status.value,
            "provider": state.provider or "",
            "provider_message_id": state.provider_message_id or "",
            "phone_masked": state.phone_masked or "",
            "lease_until": state.lease_until.isoformat() if state.lease_until else "",
            "send_attempts": state.send_attempts,
            "due": _dump(state.due),
            "recorded": _dump(state.recorded),
            "last_error": (state.last_error or "")[:1000],
            "updated_at": state.updated_at.isoformat() if state.updated_at else "",
            "flush_owner": state.flush_owner or "",
            "flush_until": state.flush_until.isoformat() if state.flush_until else "",
            # reconciliation (issue #13); rows written before it read back with the defaults
            "attempt_until": state.attempt_until.isoformat() if state.attempt_until else "",
            "first_attempt_until": state.first_attempt_until.isoformat() if state.first_attempt_until else "",
            "reconcile_attempts": state.reconcile_attempts,
            "reconcile_note": (state.reconcile_note or "")[:300],
            **({"org_id": state.org_id} if state.org_id else {}),  # multi-org only (issue #15)
        }

    def decode(self, values: Mapping[str, Any], etag: str) -> ActivityState:
        activity = ActivityRef(**{name: str(values[f"a_{name}"]) for name in _ACTIVITY_FIELDS})
        return ActivityState(
            activity=activity,
            send_status=SendStatus(values["send_status"]),
            provider=_text(values.get("provider")),
            provider_message_id=_text(values.get("provider_message_id")),
            phone_masked=_text(values.get("phone_masked")),
            lease_until=parse_time(values.get("lease_until")),
            send_attempts=int(values.get("send_attempts") or 0),
            due=_list(values.get("due")),
            recorded=_list(values.get("recorded")),
            last_error=_text(values.get("last_error")),
            updated_at=parse_time(values.get("updated_at")),
            flush_owner=_text(values.get("flush_owner")),
            flush_until=parse_time(values.get("flush_until")),
            attempt_until=parse_time(values.get("attempt_until")),
            first_attempt_until=parse_time(values.get("first_attempt_until")),
            reconcile_attempts=int(values.get("reconcile_attempts") or 0),
            reconcile_note=_text(values.get("reconcile_note")),
            org_id=_text(values.get("org_id")),
            etag=etag,
        )


_RTJ_REQUIRED = ("key", "channel_definition_id", "request_id")


class RtjCodec:
    row = "rtj"

    def encode(self, state: RtjState) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in _RTJ_FIELDS:
            value = getattr(state, name)
            if name == "org_id" and value is None:
                continue  # multi-org only (issue #15): single-org entities keep their layout
            if name in _LISTS:
                values[name] = json.dumps(value)
            elif name in _TIMES:
                values[name] = value.isoformat() if value else ""
            elif isinstance(value, bool):
                values[name] = value
            else:
                values[name] = "" if value is None else str(value)[:1000]
        return values

    def decode(self, values: Mapping[str, Any], etag: str) -> RtjState:
        kwargs: dict[str, Any] = {}
        for name in _RTJ_FIELDS:
            if name not in values:
                continue
            raw = values[name]
            if name in _LISTS:
                kwargs[name] = list(json.loads(raw or "[]"))
            elif name in _TIMES:
                kwargs[name] = parse_time(raw)
            elif name == "reconcile_attempts":
                kwargs[name] = int(raw or 0)
            elif name == "is_test_send":
                kwargs[name] = bool(raw)
            elif name == "status":
                kwargs[name] = RtjStatus(raw or RtjStatus.CLAIMED)
            else:
                kwargs[name] = raw if name in _RTJ_REQUIRED else _text(raw)
        return RtjState(**kwargs, etag=etag)


ACTIVITIES = ActivityCodec()
RTJ_SENDS = RtjCodec()
