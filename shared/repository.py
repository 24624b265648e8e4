"""Activity state and lookup indexes on top of any :class:`KeyValueStore` (Azure Table Storage in Azure)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from shared.domain.models import ActivityRef
from shared.domain.rtj import RtjState
from shared.domain.state import ActivityState, SendStatus
from shared.ports import Conflict, KeyValueStore

ACTIVITY_ROW = "activity"
INDEX_ROW = "index"
MAX_CONFLICT_RETRIES = 20


def phone_key(phone: str) -> str:
    """Index key for a phone number: a hash, so the raw number never becomes a table key."""
    number = phone.split(":", 1)[1] if phone.startswith("whatsapp:") else phone
    return "phone-" + hashlib.sha256(number.encode()).hexdigest()[:40]


def message_key(provider: str, message_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id)
    return f"msg-{provider}-{safe}"[:250]


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _to_entity(state: ActivityState) -> dict[str, Any]:
    return {
        **{f"a_{k}": v for k, v in asdict(state.activity).items()},
        "send_status": state.send_status.value,
        "contract": state.contract,
        "provider": state.provider or "",
        "provider_message_id": state.provider_message_id or "",
        "phone_masked": state.phone_masked or "",
        "lease_until": state.lease_until.isoformat() if state.lease_until else "",
        "send_attempts": state.send_attempts,
        "due": json.dumps(state.due),
        "recorded": json.dumps(state.recorded),
        "last_error": (state.last_error or "")[:1000],
        "updated_at": state.updated_at.isoformat() if state.updated_at else "",
        "flush_owner": state.flush_owner or "",
        "flush_until": state.flush_until.isoformat() if state.flush_until else "",
    }


def _from_entity(values: dict[str, Any], etag: str) -> ActivityState:
    activity = ActivityRef(**{name: str(values[f"a_{name}"]) for name in ActivityRef.__dataclass_fields__})
    return ActivityState(
        activity=activity,
        send_status=SendStatus(values["send_status"]),
        contract=values.get("contract") or "outbound",
        provider=values.get("provider") or None,
        provider_message_id=values.get("provider_message_id") or None,
        phone_masked=values.get("phone_masked") or None,
        lease_until=_dt(values.get("lease_until")),
        send_attempts=int(values.get("send_attempts") or 0),
        due=list(json.loads(values.get("due") or "[]")),
        recorded=list(json.loads(values.get("recorded") or "[]")),
        last_error=values.get("last_error") or None,
        updated_at=_dt(values.get("updated_at")),
        flush_owner=values.get("flush_owner") or None,
        flush_until=_dt(values.get("flush_until")),
        etag=etag,
    )


class StateRepository:
    """Activity records over a :class:`KeyValueStore`.

    Keeps the last state it read or wrote per record (bounded, per process) so a read-modify-write usually costs
    one write: the write carries the ETag, so a stale copy can never win — it fails and the record is re-read.
    """

    CACHE_SIZE = 4096

    def __init__(self, store: KeyValueStore, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now
        self._known: OrderedDict[str, ActivityState] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, state: ActivityState) -> ActivityState:
        with self._lock:
            self._known[state.row_id] = state
            self._known.move_to_end(state.row_id)
            while len(self._known) > self.CACHE_SIZE:
                self._known.popitem(last=False)
        return state

    def _forget(self, row_id: str) -> None:
        with self._lock:
            self._known.pop(row_id, None)

    # --- activity records ----------------------------------------------------------------------
    def get(self, row_id: str) -> ActivityState | None:
        found = self._store.get(row_id, ACTIVITY_ROW)
        if found is None:
            return None
        return self._remember(_from_entity(*found))

    def get_or_create(self, activity: ActivityRef) -> ActivityState:
        # Insert first: almost every activity is new, so this is usually the only call (a redelivery pays a read).
        state = ActivityState(activity=activity, updated_at=self._now())
        try:
            etag = self._store.insert(activity.row_id, ACTIVITY_ROW, _to_entity(state))
        except Conflict:
            again = self.get(activity.row_id)
            if again is None:  # pragma: no cover - deleted in between
                raise
            return again
        return self._remember(replace(state, etag=etag))

    def save(self, state: ActivityState) -> ActivityState:
        """Write ``state`` if nobody changed it since it was read; raise :class:`Conflict` otherwise."""
        if state.etag is None:
            raise ValueError("save() needs a state that was read from the store")
        updated = replace(state, updated_at=self._now())
        try:
            etag = self._store.replace(state.row_id, ACTIVITY_ROW, _to_entity(updated), state.etag)
        except Conflict:
            self._forget(state.row_id)
            raise
        return self._remember(replace(updated, etag=etag))

    def mutate(self, row_id: str, change: Callable[[ActivityState], ActivityState | None]) -> ActivityState:
        """Read-modify-write with optimistic concurrency; ``change`` returning None means no write."""
        with self._lock:
            current: ActivityState | None = self._known.get(row_id)
        verified = False
        for _ in range(MAX_CONFLICT_RETRIES):
            if current is None:
                current = self.get(row_id)
                verified = True
                if current is None:
                    raise KeyError(row_id)
            changed = change(current)
            if changed is None:
                if verified:
                    return current
                current = None  # decide "no change" on fresh data only
                continue
            try:
                return self.save(changed)
            except Conflict:
                current = None
                continue
        raise Conflict(f"state record {row_id} kept changing under us")

    # --- indexes ---------------------------------------------------------------------------------
    def index_message(self, provider: str, message_id: str, row_id: str) -> None:
        self._store.upsert(message_key(provider, message_id), INDEX_ROW, {"row_id": row_id})

    def find_by_message(self, provider: str, message_id: str) -> str | None:
        found = self._store.get(message_key(provider, message_id), INDEX_ROW)
        return None if found is None else str(found[0]["row_id"])

    def index_phone(self, phone: str, row_id: str, sent_at: datetime) -> None:
        """Remember the most recent activity sent to ``phone`` (for matching replies)."""
        key = phone_key(phone)
        values = {"row_id": row_id, "sent_at": sent_at.isoformat()}
        try:
            self._store.insert(key, INDEX_ROW, values)  # the common case: one write
            return
        except Conflict:
            pass
        for _ in range(MAX_CONFLICT_RETRIES):
            found = self._store.get(key, INDEX_ROW)
            try:
                if found is None:
                    self._store.insert(key, INDEX_ROW, values)
                    return
                current, etag = found
                if (_dt(current.get("sent_at")) or sent_at) > sent_at:
                    return  # a newer activity already owns this number
                self._store.replace(key, INDEX_ROW, values, etag)
                return
            except Conflict:
                continue

    def find_by_phone(self, phone: str) -> tuple[str, datetime] | None:
        found = self._store.get(phone_key(phone), INDEX_ROW)
        if found is None:
            return None
        sent_at = _dt(found[0].get("sent_at"))
        return (str(found[0]["row_id"]), sent_at) if sent_at else None


# --- real-time journeys sends ---------------------------------------------------------------------
RTJ_ROW = "rtj"
_RTJ_LISTS = ("due", "recorded")
_RTJ_TIMES = ("lease_until", "flush_until", "updated_at")


def _rtj_to_entity(state: RtjState) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in asdict(state).items():
        if name == "etag":
            continue
        if name in _RTJ_LISTS:
            values[name] = json.dumps(value)
        elif name in _RTJ_TIMES:
            values[name] = value.isoformat() if value else ""
        elif isinstance(value, bool):
            values[name] = value
        else:
            values[name] = "" if value is None else str(value)[:1000]
    return values


def _rtj_from_entity(values: dict[str, Any], etag: str) -> RtjState:
    kwargs: dict[str, Any] = {}
    for name in RtjState.__dataclass_fields__:
        if name == "etag" or name not in values:
            continue
        raw = values[name]
        if name in _RTJ_LISTS:
            kwargs[name] = list(json.loads(raw or "[]"))
        elif name in _RTJ_TIMES:
            kwargs[name] = _dt(raw)
        elif name == "is_test_send":
            kwargs[name] = bool(raw)
        else:
            kwargs[name] = raw if raw != "" or name in ("key", "channel_definition_id", "request_id") else None
    return RtjState(**kwargs, etag=etag)


class RtjRepository:
    """Real-time journeys send records, the sender → channel index (inbound) and inbound dedup marks."""

    def __init__(self, store: KeyValueStore, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    def get(self, key: str) -> RtjState | None:
        found = self._store.get(key, RTJ_ROW)
        return None if found is None else _rtj_from_entity(*found)

    def get_or_create(self, state: RtjState) -> RtjState:
        existing = self.get(state.key)
        if existing is not None:
            return existing
        fresh = replace(state, updated_at=self._now())
        try:
            etag = self._store.insert(state.key, RTJ_ROW, _rtj_to_entity(fresh))
        except Conflict:
            again = self.get(state.key)
            if again is None:  # pragma: no cover - deleted in between
                raise
            return again
        return replace(fresh, etag=etag)

    def mutate(self, key: str, change: Callable[[RtjState], RtjState | None]) -> RtjState:
        for _ in range(MAX_CONFLICT_RETRIES):
            current = self.get(key)
            if current is None:
                raise KeyError(key)
            changed = change(current)
            if changed is None:
                return current
            updated = replace(changed, updated_at=self._now())
            try:
                etag = self._store.replace(key, RTJ_ROW, _rtj_to_entity(updated), str(current.etag))
            except Conflict:
                continue
            return replace(updated, etag=etag)
        raise Conflict(f"real-time journeys record {key} kept changing under us")

    def index_message(self, provider: str, message_id: str, key: str) -> None:
        """Same index as outbound-marketing sends: a delivery report finds its record whatever the contract."""
        self._store.upsert(message_key(provider, message_id), INDEX_ROW, {"row_id": key})

    def index_sender(self, sender: str, channel_definition_id: str) -> None:
        self._store.upsert(
            sender_key(sender), INDEX_ROW, {"channel_definition_id": channel_definition_id, "sender": sender}
        )

    def channel_for_sender(self, number: str) -> tuple[str, str] | None:
        found = self._store.get(sender_key(number), INDEX_ROW)
        if found is None:
            return None
        return str(found[0]["channel_definition_id"]), str(found[0]["sender"])

    def inbound_done(self, provider: str, message_id: str) -> bool:
        return self._store.get(message_key(provider, message_id).replace("msg-", "rtjin-", 1), INDEX_ROW) is not None

    def mark_inbound_done(self, provider: str, message_id: str) -> None:
        self._store.upsert(message_key(provider, message_id).replace("msg-", "rtjin-", 1), INDEX_ROW, {"done": True})


def sender_key(number: str) -> str:
    plain = number.split(":", 1)[1] if number.startswith("whatsapp:") else number
    return "rtjsender-" + hashlib.sha256(plain.encode()).hexdigest()[:40]
