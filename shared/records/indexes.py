"""Lookup indexes in the state table, and every index key, built here and nowhere else.

- ``msg-<provider>-<message id>`` → record key: a delivery report without our query string finds its record,
  whatever the contract (the key says which: see :func:`shared.domain.rtj.is_rtj_key`);
- ``phone-<sha256>`` → the most recent outbound-marketing activity sent to a number and when (reply matching);
- ``rtjsender-<sha256>`` → the real-time journeys channel definition that sends from one of our numbers (inbound);
- ``rtjin-<provider>-<message id>`` → an inbound message already forwarded to real-time journeys (dedup).

Raw phone numbers are never keys: they are hashed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from shared.domain.phone import strip_channel_prefix
from shared.ports import Conflict, KeyValueStore
from shared.records.codecs import parse_time
from shared.records.store import MAX_CONFLICT_RETRIES

INDEX_ROW = "index"


def _hashed(prefix: str, number: str) -> str:
    return f"{prefix}-" + hashlib.sha256(strip_channel_prefix(number).encode()).hexdigest()[:40]


def _per_message(prefix: str, provider: str, message_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id)
    return f"{prefix}-{provider}-{safe}"[:250]


def message_key(provider: str, message_id: str) -> str:
    return _per_message("msg", provider, message_id)


def inbound_key(provider: str, message_id: str) -> str:
    return _per_message("rtjin", provider, message_id)


def phone_key(phone: str, org: str | None = None) -> str:
    """The reply index of ``phone``: across orgs (``org`` None), or within one org (multi-org, issue #15)."""
    return _hashed("phone", phone) if org is None else _hashed("phone", f"{org}|{phone}")


def sender_key(number: str, org: str | None = None) -> str:
    return (
        _hashed("rtjsender", number) if org is None else _hashed("rtjsender", f"{org}|{strip_channel_prefix(number)}")
    )


def conversation_key(ours: str, contact: str) -> str:
    """Which org last wrote to ``contact`` from our number ``ours`` (multi-org reply routing, issue #15)."""
    return _hashed("conv", f"{strip_channel_prefix(ours)}|{strip_channel_prefix(contact)}")


class Indexes:
    """``org``: the org these indexes write for (multi-org, issue #15). Its reply index is the org's own, and the
    deployment-wide one (the most recent activity to a number from any org) is kept too, naming the org."""

    def __init__(self, store: KeyValueStore, org: str | None = None, sender: str | None = None) -> None:
        self._store = store
        self._org = org
        self._sender = sender  # the org's own sending number or id (its conversations: multi-org)

    def _get(self, key: str) -> dict[str, object] | None:
        found = self._store.get(key, INDEX_ROW)
        return None if found is None else dict(found[0])

    # --- delivery reports -------------------------------------------------------------------------------------
    def index_message(self, provider: str, message_id: str, record_key: str) -> None:
        self._store.upsert(message_key(provider, message_id), INDEX_ROW, {"row_id": record_key})

    def find_by_message(self, provider: str, message_id: str) -> str | None:
        found = self._get(message_key(provider, message_id))
        return None if found is None else str(found["row_id"])

    # --- replies to outbound marketing ----------------------------------------------------------------------------
    def index_phone(self, phone: str, row_id: str, sent_at: datetime) -> None:
        """Remember the most recent activity sent to ``phone`` (for matching replies)."""
        values = {"row_id": row_id, "sent_at": sent_at.isoformat()}
        if self._org is not None:
            self._newest(phone_key(phone, self._org), values, sent_at)
            if self._sender:
                self.index_conversation(self._sender, phone)
            values = {**values, "org_id": self._org}
        self._newest(phone_key(phone), values, sent_at)

    def index_conversation(self, ours: str, contact: str) -> None:
        if self._org is not None:
            self._store.upsert(conversation_key(ours, contact), INDEX_ROW, {"org_id": self._org})

    def org_of_conversation(self, ours: str, contact: str) -> str | None:
        found = self._get(conversation_key(ours, contact))
        return None if found is None or not found.get("org_id") else str(found["org_id"])

    def _newest(self, key: str, values: dict[str, str], sent_at: datetime) -> None:
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
                if (parse_time(current.get("sent_at")) or sent_at) > sent_at:
                    return  # a newer activity already owns this number
                self._store.replace(key, INDEX_ROW, values, etag)
                return
            except Conflict:
                continue

    def find_by_phone(self, phone: str) -> tuple[str, datetime] | None:
        found = self._get(phone_key(phone, self._org))
        if found is None:
            return None
        sent_at = parse_time(found.get("sent_at"))
        return (str(found["row_id"]), sent_at) if sent_at else None

    def org_by_phone(self, phone: str) -> str | None:
        """The org of the most recent activity sent to ``phone`` from any org (multi-org reply routing)."""
        found = self._get(phone_key(phone))
        return None if found is None or not found.get("org_id") else str(found["org_id"])

    # --- real-time journeys inbound -------------------------------------------------------------------------------
    def index_sender(self, sender: str, channel_definition_id: str, contact: str | None = None) -> None:
        """The real-time journeys channel sending from ``sender`` (in this org: orgs may share a number), and, with
        ``contact``, the conversation that a reply from that contact continues."""
        values = {"channel_definition_id": channel_definition_id, "sender": sender}
        self._store.upsert(sender_key(sender, self._org), INDEX_ROW, values)
        if contact:
            self.index_conversation(sender, contact)

    def channel_for_sender(self, number: str) -> tuple[str, str] | None:
        found = self._get(sender_key(number, self._org))
        return None if found is None else (str(found["channel_definition_id"]), str(found["sender"]))

    def inbound_done(self, provider: str, message_id: str) -> bool:
        return self._get(inbound_key(provider, message_id)) is not None

    def mark_inbound_done(self, provider: str, message_id: str) -> None:
        self._store.upsert(inbound_key(provider, message_id), INDEX_ROW, {"done": True})
