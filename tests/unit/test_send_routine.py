"""The one send-under-lease routine, driven with both contracts' state machines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import MemoryStore
from shared.app.send import claim, send_claimed, send_request
from shared.domain.errors import SendFailedTransient, SendRejected
from shared.domain.models import ActivityRef
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.send import OUTBOUND, RTJ
from shared.domain.state import ActivityState, SendStatus
from shared.records.codecs import ACTIVITIES, RTJ_SENDS
from shared.records.store import RecordStore
from tests.fakes import FakeClock, FakeProvider

LEASE = datetime(2026, 12, 1, 12, 2, tzinfo=UTC)


def outbound() -> tuple[RecordStore[ActivityState], str]:
    store: RecordStore[ActivityState] = RecordStore(MemoryStore(), ACTIVITIES, FakeClock().now)
    activity = ActivityRef("row", "act", "contact", "journey", "iteration", "t", "m")
    return store, store.insert(ActivityState(activity)).key


def rtj() -> tuple[RecordStore[RtjState], str]:
    store: RecordStore[RtjState] = RecordStore(MemoryStore(), RTJ_SENDS, FakeClock().now)
    return store, store.insert(RtjState("rtj-1", "def", "req")).key


CASES = [
    (outbound, OUTBOUND, lambda r: r.send_status, SendStatus),
    (rtj, RTJ, lambda r: r.status, RtjStatus),
]


@pytest.mark.parametrize(("make", "machine", "status", "kind"), CASES, ids=["outbound", "rtj"])
def test_one_claim_wins_and_each_provider_answer_is_one_transition(make, machine, status, kind) -> None:  # type: ignore[no-untyped-def]
    request = send_request("row", "+447700900123", "hi", "https://app/cb")
    assert request.status_callback_url == "https://app/cb?activity=row" and request.idempotency_key == "row"
    outcomes = {
        "accepted": (None, kind.SENT),
        "rejected": (SendRejected("21211", "invalid"), kind.FAILED if kind is SendStatus else kind.NOT_SENT),
        "released": (SendFailedTransient("503", retry_safe=True), kind.CLAIMED),
        "ambiguous": (SendFailedTransient("read timeout", retry_safe=False), kind.AMBIGUOUS),
    }
    for expected, (error, final) in outcomes.items():
        store, key = make()
        provider = FakeProvider(outcomes=[error] if error else [])
        claimed = claim(store, machine, key, provider=provider.name, lease_until=LEASE, phone_masked="+****0123")
        assert claimed is not None and status(claimed) is kind.SENDING
        assert claim(store, machine, key, provider="x", lease_until=LEASE + timedelta(1), phone_masked="") is None
        attempt = send_claimed(store, machine, provider, key, request)
        assert attempt.kind == expected and status(attempt.record) is final
        stored = store.get(key)
        assert stored is not None and status(stored) is final and stored.lease_until is None
        assert (attempt.result is not None) == (expected == "accepted")
        assert len(provider.sent) == (1 if expected == "accepted" else 0)
