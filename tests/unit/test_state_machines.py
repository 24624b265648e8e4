"""The send/report state machines of both contracts, as the pure functions they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain import rtj_state, state
from shared.domain.models import ActivityRef, StatusKind
from shared.domain.rtj import DELIVERED, NOT_DELIVERED
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.send import OUTBOUND, RTJ
from shared.domain.state import ActivityState, SendStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=2)
ACTIVITY = ActivityRef("row", "act", "contact", "journey", "iteration", "cr123_smsmessage", "msg")


def fresh() -> ActivityState:
    return ActivityState(ACTIVITY)


def sending() -> ActivityState:
    claimed = state.claim(fresh(), provider="twilio", lease_until=LEASE, phone_masked="+****0123")
    assert claimed is not None
    return claimed


def test_only_an_unsent_record_is_claimed_and_each_claim_counts_an_attempt() -> None:
    claimed = sending()
    assert (claimed.send_status, claimed.lease_until, claimed.send_attempts) == (SendStatus.SENDING, LEASE, 1)
    assert claimed.phone_masked == "+****0123" and claimed.provider == "twilio"
    for status in SendStatus:
        if status is not SendStatus.CLAIMED:
            record = ActivityState(ACTIVITY, send_status=status)
            assert state.claim(record, provider="x", lease_until=LEASE, phone_masked="") is None


def test_accepted_makes_sent_due_and_keeps_a_message_id_a_report_brought_first() -> None:
    accepted = state.accepted(sending(), provider="twilio", message_id="SM1")
    assert (accepted.send_status, accepted.lease_until, accepted.due) == (SendStatus.SENT, None, ["sent"])
    early = state.accepted(ActivityState(ACTIVITY, provider_message_id="SM0"), provider="twilio", message_id="SM1")
    assert early.provider_message_id == "SM0"


def test_released_and_ambiguous_apply_only_to_a_send_in_flight() -> None:
    released = state.released(sending(), detail="HTTP 503")
    assert released is not None and released.send_status is SendStatus.CLAIMED and released.lease_until is None
    ambiguous = state.ambiguous(sending(), detail="read timeout")
    assert ambiguous is not None and ambiguous.send_status is SendStatus.AMBIGUOUS and ambiguous.due == []
    done = state.accepted(sending(), provider="twilio", message_id="SM1")
    assert state.released(done, detail="x") is None and state.ambiguous(done, detail="x") is None


def test_rejected_and_not_sent_make_failed_due_once() -> None:
    rejected = state.rejected(sending(), code="21211", detail="invalid number")
    assert rejected is not None and rejected.send_status is SendStatus.FAILED and rejected.due == ["failed"]
    assert rejected.last_error == "21211 invalid number"
    failed = state.not_sent(fresh(), "no phone number", "")
    assert failed is not None and failed.due == ["failed"]
    assert state.not_sent(failed, "again", "") is None
    assert state.suppressed(fresh()) == ActivityState(ACTIVITY, send_status=SendStatus.SUPPRESSED)
    assert state.suppressed(failed) is None


def test_a_delivery_report_resolves_an_uncertain_send_and_never_goes_backwards() -> None:
    ambiguous = state.ambiguous(sending(), detail="crash")
    assert ambiguous is not None
    resolved = state.on_status(ambiguous, provider="twilio", message_id="SM1", kind=StatusKind.DELIVERED)
    assert resolved is not None and resolved.send_status is SendStatus.SENT
    assert resolved.provider_message_id == "SM1" and resolved.due == ["sent", "delivered"]
    assert state.on_status(resolved, provider="twilio", message_id="SM1", kind=StatusKind.FAILED) is None
    assert state.on_status(resolved, provider="twilio", message_id="SM1", kind=StatusKind.DELIVERED) is None
    never_sent = state.suppressed(fresh())
    assert never_sent is not None
    assert state.on_status(never_sent, provider="twilio", message_id="SM9", kind=StatusKind.DELIVERED) is None


def test_a_keyword_is_due_once_per_activity_and_word() -> None:
    once = state.on_keyword(fresh(), "yes")
    assert once is not None and once.due == ["keyword:yes"]
    assert state.on_keyword(once, "yes") is None
    both = state.on_keyword(once, "stop")
    assert both is not None and both.due == ["keyword:yes", "keyword:stop"]


def rtj_record(status: RtjStatus = RtjStatus.CLAIMED) -> RtjState:
    return RtjState("rtj-k", "def", "req", status=status)


def test_rtj_send_transitions_mirror_the_outbound_ones() -> None:
    claimed = rtj_state.claim(rtj_record(), provider="twilio", lease_until=LEASE, phone_masked="")
    assert claimed is not None and claimed.status is RtjStatus.SENDING and claimed.lease_until == LEASE
    assert rtj_state.claim(claimed, provider="twilio", lease_until=LEASE, phone_masked="") is None
    sent = rtj_state.accepted(claimed, provider="twilio", message_id="SM1")
    assert sent.status is RtjStatus.SENT and sent.provider_message_id == "SM1" and sent.lease_until is None
    rejected = rtj_state.rejected(claimed, code="21211", detail="invalid")
    assert rejected is not None and (rejected.status, rejected.reason) == (RtjStatus.NOT_SENT, "21211")
    assert rtj_state.rejected(sent, code="x", detail="y") is None
    released = rtj_state.released(claimed, detail="503")
    assert released is not None and released.status is RtjStatus.CLAIMED
    ambiguous = rtj_state.ambiguous(claimed)
    assert ambiguous is not None and (ambiguous.status, ambiguous.reason) == (RtjStatus.AMBIGUOUS, "Ambiguous")
    not_sent = rtj_state.not_sent(rtj_record(), "InvalidRecipient", "To is not E.164")
    assert not_sent is not None and not_sent.status is RtjStatus.NOT_SENT
    assert rtj_state.not_sent(sent, "x", "y") is None


def test_rtj_reports_one_final_notification_per_message() -> None:
    sent = rtj_record(RtjStatus.SENT)
    delivered = rtj_state.on_status(sent, message_id="SM1", kind=StatusKind.DELIVERED, reason="delivered")
    assert delivered is not None and delivered.due == [DELIVERED]
    assert rtj_state.on_status(delivered, message_id="SM1", kind=StatusKind.FAILED, reason="30003") is None
    failed = rtj_state.on_status(sent, message_id="SM1", kind=StatusKind.FAILED, reason="30003")
    assert failed is not None and failed.due == [f"{NOT_DELIVERED}:30003"]
    assert rtj_state.on_status(sent, message_id="SM1", kind=StatusKind.IGNORED, reason="queued") is None


def test_both_contracts_bundle_their_transitions_for_the_one_send_routine() -> None:
    assert OUTBOUND.claim is state.claim and OUTBOUND.accepted is state.accepted
    assert RTJ.claim is rtj_state.claim and RTJ.ambiguous is rtj_state.ambiguous
