"""Unit-size reproductions of the bugs the fault-injection run and the fuzzers found (they run in every CI)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.models import InboundEvent, SendRequest, SendResult
from shared.domain.state import SendStatus
from shared.ports import QueueMessage
from tests.fakes import world
from tests.helpers import CONTACT_ID, ROW_ID, activity_message

PHONE = "+447700900123"


class Died(BaseException):
    """The worker process died (not an Exception: nothing in the app may handle it)."""


def test_stop_reply_is_honoured_when_the_worker_died_after_the_provider_accepted() -> None:
    """Fault run, seed 1: a STOP reply was unmatched (keyword lost, compliance column never set) when the worker
    died between the provider accepting the text and the state write, because the phone index was written last."""
    w = world()
    original_send = w.provider.send

    def send_then_die(request: SendRequest) -> SendResult:
        original_send(request)
        raise Died

    w.provider.send = send_then_die  # type: ignore[method-assign]
    with pytest.raises(Died):
        w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    w.provider.send = original_send  # type: ignore[method-assign]
    w.clock.advance(minutes=3)  # lock expired, redelivered after the send lease: ambiguous, nothing resent
    outcome = w.service.handle_activity_message(
        QueueMessage("activities", activity_message(), "m-1", "application/json")
    )
    assert outcome.result == "ambiguous"
    assert len(w.provider.sent) == 1

    outcome = w.service.apply_event("fake", InboundEvent("IN1", PHONE, "+15005550006", "STOP"))
    assert outcome.result == "applied"
    assert w.dataverse.updates == [("contact", CONTACT_ID, {"donotphone": True})]
    assert w.dataverse.response_types() == ["keyword:stop"]


def test_reply_is_matched_when_the_worker_died_after_the_state_write() -> None:
    w = world()
    original = w.indexes.index_message

    def die(*args: object) -> None:
        raise Died

    w.indexes.index_message = die  # type: ignore[method-assign]
    with pytest.raises(Died):
        w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    w.indexes.index_message = original  # type: ignore[method-assign]
    state = w.repo.get(ROW_ID)
    assert state is not None and state.send_status is SendStatus.SENT
    w.clock.advance(seconds=90)
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    assert w.service.apply_event("fake", InboundEvent("IN1", PHONE, "x", "Yes")).result == "applied"
    assert w.dataverse.response_types() == ["sent", "keyword:yes"]
    assert len(w.provider.sent) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000, "invalid_json"),  # RecursionError escaped the parser: 10 redeliveries, no reason
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "invalid_json"),
    ],
)
def test_deeply_nested_json_is_poisoned_once(body: bytes, reason: str) -> None:
    w = world()
    outcome = w.service.handle_activity_message(QueueMessage("activities", body, "m-1", "application/json"))
    assert outcome.result == "poisoned"
    assert [m.application_properties["DeadLetterReason"] for m in w.queue.on("activities-poison")] == [reason]


def test_send_lease_is_not_reused_as_a_reply_window() -> None:
    """Indexing the number before the send must not change reply attribution of a normal send."""
    w = world()
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    w.clock.advance(days=6)
    assert w.service.apply_event("fake", InboundEvent("IN1", PHONE, "x", "yes")).result == "applied"
    w.clock.advance(days=2)
    assert w.service.apply_event("fake", InboundEvent("IN2", PHONE, "x", "maybe")).result == "unmatched"
    assert timedelta(days=7) == w.service.config.reply_window


def test_out_of_range_wcf_date_is_ignored_not_a_crash() -> None:
    """Fuzzing: ``/Date(99999999999999999999)/`` raised OverflowError out of the parser (redelivery loop)."""
    from shared.domain.context import parse_activity_message, parse_wcf_date

    assert parse_wcf_date("/Date(99999999999999999999)/") is None
    assert parse_wcf_date("/Date(-99999999999999999999)/") is None
    body = activity_message().replace(b"/Date(", b"/Date(99999999999999999999", 1)
    assert parse_activity_message(body, "application/json").activity is not None


def test_non_finite_attempt_property_does_not_crash_the_trigger() -> None:
    """Fuzzing: ``channel-attempt: 1e400`` (JSON infinity) raised OverflowError in the retry path."""
    from shared.domain.errors import SendFailedTransient

    w = world()
    w.provider.outcomes = [SendFailedTransient("Twilio HTTP 503", retry_safe=True)]
    message = QueueMessage(
        "activities", activity_message(), "m-1", "application/json", 1, {"channel-attempt": float("inf")}
    )
    assert w.service.handle_activity_message(message).result == "retry_scheduled"


@pytest.mark.parametrize("signature", ["é", "\u2603" * 28, "ü=="])
def test_non_ascii_signature_header_is_a_403_not_a_500(signature: str) -> None:
    """Fuzzing: hmac.compare_digest raises TypeError for non-ASCII str, so a crafted X-Twilio-Signature was a 500."""
    from shared.providers import twilio_signature

    assert not twilio_signature.validate("token", "https://x.example/api/callbacks/twilio", [], signature)
    assert not twilio_signature.validate(
        "token", "https://x.example/api/callbacks/twilio?bodySHA256=\u00e9", [], "sig", body=b"{}"
    )
