"""The generic record store (ETags, insert-first, cache), its codecs and the index keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.adapters.memory import MemoryStore
from shared.domain.models import ActivityRef
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.state import ActivityState, SendStatus
from shared.ports import Conflict
from shared.records.codecs import ACTIVITIES, RTJ_SENDS
from shared.records.indexes import Indexes, inbound_key, message_key, phone_key, sender_key
from shared.records.store import RecordStore
from tests.fakes import FakeClock

ACTIVITY = ActivityRef("row-1", "act", "contact", "journey", "iteration", "cr123_smsmessage", "msg")


def stores() -> tuple[MemoryStore, RecordStore[ActivityState], RecordStore[ActivityState]]:
    """One table, two workers (each with its own cache)."""
    table, clock = MemoryStore(), FakeClock()
    return table, RecordStore(table, ACTIVITIES, clock.now), RecordStore(table, ACTIVITIES, clock.now)


def test_insert_first_then_the_existing_record_on_a_redelivery() -> None:
    _, first, _ = stores()
    created, was_new = first.get_or_insert(ActivityState(ACTIVITY))
    assert was_new and created.etag is not None and created.updated_at is not None
    again, was_new = first.get_or_insert(ActivityState(ACTIVITY, send_status=SendStatus.SUPPRESSED))
    assert not was_new and again.send_status is SendStatus.CLAIMED
    with pytest.raises(Conflict):
        first.insert(ActivityState(ACTIVITY))


def test_a_stale_cached_copy_never_wins_it_is_re_read() -> None:
    _, one, two = stores()
    one.insert(ActivityState(ACTIVITY))
    two.mutate("row-1", lambda s: ActivityState(s.activity, send_status=SendStatus.FAILED, etag=s.etag))
    # worker one still caches the claimed version: its write fails on the ETag, it re-reads and decides again
    seen: list[SendStatus] = []

    def change(s: ActivityState) -> ActivityState | None:
        seen.append(s.send_status)
        return (
            None if s.send_status is not SendStatus.CLAIMED else ActivityState(s.activity, SendStatus.SENT, etag=s.etag)
        )

    result = one.mutate("row-1", change)
    assert seen == [SendStatus.CLAIMED, SendStatus.FAILED] and result.send_status is SendStatus.FAILED


def test_a_cached_read_modify_write_costs_one_store_call() -> None:
    table, one, _ = stores()
    one.insert(ActivityState(ACTIVITY))
    before = table.operations
    one.mutate("row-1", lambda s: ActivityState(s.activity, SendStatus.SENT, etag=s.etag))
    assert table.operations - before == 1
    with pytest.raises(KeyError):
        one.mutate("nope", lambda s: s)


def test_codecs_round_trip_and_ignore_columns_of_older_versions() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    activity = ActivityState(
        ACTIVITY, SendStatus.SENT, "twilio", "SM1", "+****0123", at, 2, ["delivered"], ["sent"], "x", at, "t", at
    )
    values = ACTIVITIES.encode(activity)
    assert "contract" not in values
    assert ACTIVITIES.decode({**values, "contract": "outbound"}, "e1") == ActivityState(
        **{**vars(activity), "etag": "e1"}
    )
    rtj = RtjState("rtj-1", "def", "req", "idem", "+1500", "+****0123", "j", True, RtjStatus.SENT, "twilio", "SM1")
    rtj_values = RTJ_SENDS.encode(rtj)
    decoded = RTJ_SENDS.decode({**rtj_values, "contract": "rtj"}, "e2")
    assert decoded == RtjState(**{**vars(rtj), "etag": "e2"}) and decoded.status is RtjStatus.SENT


def test_index_keys_are_built_in_one_place_and_never_hold_a_raw_number() -> None:
    assert message_key("twilio", "SM1/x") == "msg-twilio-SM1_x"
    assert inbound_key("twilio", "SM1/x") == "rtjin-twilio-SM1_x"
    assert len(message_key("acs", "x" * 400)) == 250 and len(inbound_key("acs", "x" * 400)) == 250
    assert phone_key("whatsapp:+447700900123") == phone_key("+447700900123")
    assert sender_key("whatsapp:+15005550006") == sender_key("+15005550006")
    for key in (phone_key("+447700900123"), sender_key("+447700900123")):
        assert "447700900123" not in key


def test_indexes_remember_the_newest_send_per_number_and_the_inbound_dedup() -> None:
    indexes = Indexes(MemoryStore())
    early, late = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    indexes.index_phone("+447700900123", "new", late)
    indexes.index_phone("+447700900123", "old", early)
    assert indexes.find_by_phone("whatsapp:+447700900123") == ("new", late)
    assert not indexes.inbound_done("twilio", "SM1")
    indexes.mark_inbound_done("twilio", "SM1")
    assert indexes.inbound_done("twilio", "SM1") and indexes.find_by_message("twilio", "SM1") is None
    indexes.index_sender("whatsapp:+15005550006", "def")
    assert indexes.channel_for_sender("+15005550006") == ("def", "whatsapp:+15005550006")
