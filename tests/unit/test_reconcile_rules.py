"""The pure rules of reconciliation (shared/domain/reconcile.py) and the reconciliation transitions of both machines."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain import reconcile, rtj_state, state
from shared.domain.errors import PoisonMessage
from shared.domain.models import ActivityRef
from shared.domain.reconcile import Candidate, ReconcileOrder, SentQuery
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.state import ActivityState, SendStatus

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEASE = T0 + timedelta(minutes=2)
ACTIVITY = ActivityRef("row-1", "act", "contact", "journey", "iteration", "cr123_smsmessage", "msg")


def query(**overrides: object) -> SentQuery:
    values: dict[str, object] = dict(
        to="+15551230001", body="Hi Avery", sender=None, window_start=T0, window_end=LEASE, first_sent=T0, asked_at=T0
    )
    values.update(overrides)
    return SentQuery(**values)  # type: ignore[arg-type]


def candidate(sid: str, seconds: float, body: str = "Hi Avery", outbound: bool = True) -> Candidate:
    return Candidate(sid, T0 + timedelta(seconds=seconds), body, outbound)


# --- the match rule --------------------------------------------------------------------------------------------
def test_one_message_with_our_text_in_the_window_is_found() -> None:
    found = reconcile.match(query(), [candidate("SM1", 3), candidate("SM0", -3600)])
    assert (found.kind, found.message_id) == ("found", "SM1")


@pytest.mark.parametrize(
    "other",
    [
        candidate("SMa", -60),  # before the claim
        candidate("SMb", 200),  # after the lease deadline
        candidate("SMd", 3, outbound=False),  # a reply, not ours
    ],
)
def test_messages_outside_the_window_are_not_ours(other: Candidate) -> None:
    assert reconcile.match(query(), [other]).kind == "absent"


def test_a_message_in_the_window_with_another_text_never_proves_absence() -> None:
    """The provider's stored text can differ from ours (a WhatsApp template it rendered, its own re-encoding): such
    a message may be ours, so the answer is "cannot tell", never a resend."""
    result = reconcile.match(query(), [candidate("SMc", 3, body="Your code is 1234 (template)")])
    assert result.kind == "unknown" and "another text" in result.detail
    assert reconcile.match(query(), [candidate("SMc", 3, body="other"), candidate("SM1", 5)]).kind == "found"


def test_clock_skew_is_tolerated_at_both_ends() -> None:
    assert reconcile.match(query(), [candidate("SM1", -4)]).kind == "found"
    assert reconcile.match(query(), [candidate("SM1", 124)]).kind == "found"


def test_two_identical_texts_in_the_window_are_not_guessed() -> None:
    result = reconcile.match(query(), [candidate("SM1", 3), candidate("SM2", 9)])
    assert result.kind == "unknown" and "2 identical" in result.detail


def test_a_message_attributed_to_another_record_is_excluded() -> None:
    taken = query(attributed=lambda sid: sid == "SM1")
    result = reconcile.match(taken, [candidate("SM1", 3), candidate("SM2", 9)])
    assert (result.kind, result.message_id) == ("found", "SM2")
    assert reconcile.match(taken, [candidate("SM1", 3)]).kind == "absent"


def test_the_body_digest_normalises_unicode() -> None:
    assert reconcile.body_digest("Cafe\u0301") == reconcile.body_digest("Caf\u00e9")
    assert reconcile.body_digest("a") != reconcile.body_digest("b")


# --- when to ask, the order, the repeatability id ---------------------------------------------------------------
def test_reconcile_at_waits_for_the_settle_delay_after_the_lease_deadline() -> None:
    delay = timedelta(seconds=600)
    for in_flight in (True, False):
        at = reconcile.reconcile_at(LEASE, delay, None, T0 + timedelta(seconds=10), in_flight=in_flight)
        assert at == LEASE + delay
    late = LEASE + timedelta(hours=1)
    assert reconcile.reconcile_at(LEASE, delay, None, late, in_flight=False) == late


def test_a_replaying_provider_is_asked_at_once_or_right_after_the_lease() -> None:
    window, delay = timedelta(minutes=5), timedelta(seconds=600)
    now = T0 + timedelta(seconds=10)
    assert reconcile.reconcile_at(LEASE, delay, window, now, in_flight=False) == now
    assert reconcile.reconcile_at(LEASE, delay, window, now, in_flight=True) == LEASE + reconcile.REPLAY_SETTLE


def test_the_order_round_trips_and_bad_orders_are_poison() -> None:
    order = ReconcileOrder("outbound", "row-1", T0)
    assert reconcile.parse_order(order.encode()) == order
    for body in (b"nope", b"{}", b'{"kind":"other","contract":"outbound","key":"k","not_before":"2026-01-01"}'):
        with pytest.raises(PoisonMessage) as error:
            reconcile.parse_order(body)
        assert error.value.reason == "invalid_reconcile"


def test_the_repeatability_id_is_a_stable_guid_per_record_and_series() -> None:
    first = reconcile.repeatability_id("row-1", T0)
    assert uuid.UUID(first) and first == reconcile.repeatability_id("row-1", T0)
    assert first != reconcile.repeatability_id("row-2", T0)
    assert first != reconcile.repeatability_id("row-1", T0 + timedelta(seconds=1))


def test_retry_delay_backs_off_and_honours_retry_after() -> None:
    assert [reconcile.retry_delay(n, 30, None) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert reconcile.retry_delay(1, 30, 90) == 90.0
    assert reconcile.retry_delay(40, 30, None) == reconcile.MAX_DELAY_SECONDS


# --- the outbound machine ---------------------------------------------------------------------------------------
def _sending() -> ActivityState:
    claimed = state.claim(ActivityState(ACTIVITY), provider="twilio", lease_until=LEASE, phone_masked="+1***")
    assert claimed is not None
    return claimed


def test_claim_records_the_send_window_and_release_starts_a_new_series() -> None:
    s = _sending()
    assert s.attempt_until == LEASE and s.first_attempt_until == LEASE
    released = state.released(s, detail="503")
    assert released is not None and released.first_attempt_until is None
    again = state.claim(released, provider="twilio", lease_until=LEASE + timedelta(hours=1), phone_masked="+1***")
    assert again is not None and again.first_attempt_until == LEASE + timedelta(hours=1)
    ambiguous = state.ambiguous(s, detail="timeout")
    assert ambiguous is not None
    later = state.reconcile_claim(
        ambiguous, provider="twilio", lease_until=LEASE + timedelta(hours=2), phone_masked="+1***", note="absent"
    )
    assert later is not None and later.first_attempt_until == LEASE  # a replay keeps the series' first attempt


def test_found_resolves_an_ambiguous_record_to_sent_with_the_provider_id() -> None:
    ambiguous = state.ambiguous(_sending(), detail="timeout")
    assert ambiguous is not None
    found = state.reconcile_found(ambiguous, provider="twilio", message_id="SM1", note="found: one match")
    assert found is not None
    assert (found.send_status, found.provider_message_id, found.due) == (SendStatus.SENT, "SM1", ["sent"])
    assert found.reconcile_note == "found: one match"
    assert state.reconcile_found(found, provider="twilio", message_id="SM2", note="x") is None


def test_absent_claims_the_record_again_under_a_new_lease() -> None:
    ambiguous = state.ambiguous(_sending(), detail="timeout")
    assert ambiguous is not None
    until = LEASE + timedelta(hours=1)
    again = state.reconcile_claim(ambiguous, provider="twilio", lease_until=until, phone_masked="+1***", note="absent")
    assert again is not None
    assert (again.send_status, again.lease_until, again.send_attempts) == (SendStatus.SENDING, until, 2)
    assert state.reconcile_claim(again, provider="twilio", lease_until=until, phone_masked="+1", note="x") is None


def test_deferred_counts_attempts_and_sends_nothing() -> None:
    ambiguous = state.ambiguous(_sending(), detail="timeout")
    assert ambiguous is not None
    deferred = state.reconcile_deferred(ambiguous, note="unknown: 503")
    assert deferred is not None
    assert (deferred.send_status, deferred.reconcile_attempts, deferred.due) == (SendStatus.AMBIGUOUS, 1, [])
    assert state.reconcile_deferred(_sending(), note="x") is None


# --- the real-time journeys machine -----------------------------------------------------------------------------
def test_the_rtj_machine_has_the_same_reconciliation_transitions() -> None:
    fresh = RtjState("rtj-k", "def", "req")
    sending = rtj_state.claim(fresh, provider="twilio", lease_until=LEASE, phone_masked="+1***")
    assert sending is not None and sending.attempt_until == LEASE and sending.first_attempt_until == LEASE
    ambiguous = rtj_state.ambiguous(sending)
    assert ambiguous is not None and ambiguous.reason == "Ambiguous"
    deferred = rtj_state.reconcile_deferred(ambiguous, note="unknown")
    assert deferred is not None and deferred.reconcile_attempts == 1
    found = rtj_state.reconcile_found(deferred, provider="twilio", message_id="SM1", note="found")
    assert found is not None and (found.status, found.provider_message_id, found.reason) == (
        RtjStatus.SENT,
        "SM1",
        None,
    )
    until = LEASE + timedelta(hours=1)
    again = rtj_state.reconcile_claim(deferred, provider="twilio", lease_until=until, phone_masked="+1", note="absent")
    assert again is not None and again.status is RtjStatus.SENDING and again.first_attempt_until == LEASE
    assert rtj_state.reconcile_claim(replace(again), provider="t", lease_until=until, phone_masked="", note="") is None
