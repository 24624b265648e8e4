"""Service-layer behaviour of delivery reports and replies (monotonic statuses, dedup, durability)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.app.callback_codec import decode_events, encode_events
from shared.domain.models import InboundEvent, InboundHttpRequest, StatusEvent, StatusKind
from shared.domain.state import SendStatus
from shared.ports import QueueMessage
from tests.fakes import World, world
from tests.helpers import CONTACT_ID, ROW_ID, activity_message

PHONE = "+447700900123"


def sent_world(callback_processing: str = "queued") -> World:
    w = world(callback_processing=callback_processing)
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    return w


def status(kind: StatusKind, raw: str, sid: str = "FK000001", hint: str | None = ROW_ID) -> StatusEvent:
    return StatusEvent(sid, kind, raw, activity_hint=hint)


def test_delivered_once_even_when_reported_twice() -> None:
    w = sent_world()
    for _ in range(2):
        w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered"))
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_statuses_never_go_backwards() -> None:
    w = sent_world()
    w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered"))
    w.service.apply_event("fake", status(StatusKind.SENT, "sent"))
    w.service.apply_event("fake", status(StatusKind.FAILED, "undelivered"))
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_read_implies_delivered_and_out_of_order_delivered_is_ignored() -> None:
    w = sent_world()
    w.service.apply_event("fake", status(StatusKind.OPENED, "read"))
    w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered"))
    assert w.dataverse.response_types() == ["sent", "delivered", "opened"]


def test_failure_is_terminal() -> None:
    w = sent_world()
    w.service.apply_event("fake", status(StatusKind.FAILED, "undelivered"))
    w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered"))
    assert w.dataverse.response_types() == ["sent", "failed"]


def test_intermediate_statuses_record_nothing() -> None:
    w = sent_world()
    assert w.service.apply_event("fake", status(StatusKind.IGNORED, "queued")).result == "ignored"
    assert w.dataverse.response_types() == ["sent"]


def test_lookup_by_provider_message_id_without_hint() -> None:
    w = sent_world()
    w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered", hint=None))
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_unknown_message_id_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    w = sent_world()
    caplog.set_level("INFO", logger="channel")
    assert w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered", "FK999", None)).result == "unknown"
    assert "callback.unknown_message" in caplog.text


def test_report_for_another_activity_is_refused() -> None:
    w = sent_world()
    outcome = w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered", sid="FK-other"))
    assert outcome.result == "mismatch"
    assert w.dataverse.response_types() == ["sent"]


def test_delivery_report_resolves_an_ambiguous_send() -> None:
    from shared.domain.errors import SendFailedTransient

    w = world()
    w.provider.outcomes = [SendFailedTransient("read timeout", retry_safe=False)]
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m", "application/json"))
    w.service.apply_event("fake", status(StatusKind.DELIVERED, "delivered", sid="SMabc"))
    state = w.repo.get(ROW_ID)
    assert state is not None and state.send_status is SendStatus.SENT and state.provider_message_id == "SMabc"
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_reply_records_keyword_once() -> None:
    w = sent_world()
    for _ in range(2):
        w.service.apply_event("fake", InboundEvent("IN1", PHONE, "+15005550006", "Interested! call me"))
    assert w.dataverse.response_types() == ["sent", "keyword:interested"]
    assert w.dataverse.updates == []


def test_stop_sets_compliance_and_records_stop() -> None:
    w = sent_world()
    w.service.apply_event("fake", InboundEvent("IN1", "whatsapp:" + PHONE, "+15005550006", "STOP"))
    assert w.dataverse.updates == [("contact", CONTACT_ID, {"donotphone": True})]
    assert w.dataverse.response_types() == ["sent", "keyword:stop"]


def test_reply_outside_the_window_or_from_a_stranger_is_unmatched() -> None:
    w = sent_world()
    assert w.service.apply_event("fake", InboundEvent("IN1", "+15551234567", "x", "yes")).result == "unmatched"
    w.clock.advance(days=8)
    assert w.service.apply_event("fake", InboundEvent("IN2", PHONE, "x", "yes")).result == "unmatched"
    assert w.dataverse.response_types() == ["sent"]


def test_reply_goes_to_the_most_recent_activity() -> None:
    w = sent_world()
    other = "0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d"
    w.clock.advance(hours=1)
    w.service.handle_activity_message(
        QueueMessage("activities", activity_message(row_id=other), "m-2", "application/json")
    )
    w.service.apply_event("fake", InboundEvent("IN1", PHONE, "x", "yes"))
    last_activity, interaction = w.dataverse.interactions[-1]
    assert last_activity.row_id == other and interaction.key == "keyword:yes"


def test_callback_is_queued_when_dataverse_is_down_and_applied_later() -> None:
    w = sent_world("inline")
    w.provider.callback_events = [status(StatusKind.DELIVERED, "delivered")]
    w.dataverse.fail_interactions = 1
    request = InboundHttpRequest("POST", "/api/callbacks/fake", {}, {}, b"")
    reply = w.service.handle_callback("fake", request)
    assert reply.status == 200
    queued = w.queue.on("callbacks")
    assert len(queued) == 1
    outcome = w.service.handle_queued_callback(QueueMessage("callbacks", queued[0].body, "q1"))
    assert outcome.result == "applied"
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_callback_fails_loudly_when_even_the_queue_is_down() -> None:
    w = sent_world("inline")
    w.provider.callback_events = [status(StatusKind.DELIVERED, "delivered")]
    w.dataverse.fail_interactions = 1
    w.queue.fail_next = 1
    with pytest.raises(ConnectionError):
        w.service.handle_callback("fake", InboundHttpRequest("POST", "/", {}, {}, b""))


def test_queued_callback_retries_with_backoff_and_poison_on_garbage() -> None:
    w = sent_world()
    body = encode_events("fake", [status(StatusKind.DELIVERED, "delivered")])
    w.dataverse.fail_interactions = 1
    assert w.service.handle_queued_callback(QueueMessage("callbacks", body, "q1")).result == "retry_scheduled"
    assert w.queue.on("callbacks")[0].scheduled_at == w.clock.now() + timedelta(seconds=30)
    assert w.service.handle_queued_callback(QueueMessage("callbacks", b"{]", "q2")).result == "poisoned"


def test_unknown_provider_is_404() -> None:
    w = sent_world()
    reply = w.service.handle_callback("pigeon", InboundHttpRequest("POST", "/", {}, {}, b""))
    assert reply.status == 404 and b"unknown provider" in reply.body


def test_event_round_trip() -> None:
    event = StatusEvent("SM1", StatusKind.FAILED, "undelivered", activity_hint="a", error_code="30003")
    inbound = InboundEvent("SM2", "+1", "+2", "hi")
    assert decode_events(encode_events("twilio", [event, inbound])) == [("twilio", event), ("twilio", inbound)]


def test_a_callback_racing_the_send_reports_each_interaction_once() -> None:
    """The delivery report arrives while the send path is still reporting ``sent`` (it happens for real)."""
    w = world(callback_processing="inline")
    original = w.dataverse.create_interaction
    raced = []

    def create_interaction(activity, interaction):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            # the callback lands now, on another worker: it must not report "sent" a second time
            w.service.handle_callback("fake", InboundHttpRequest("POST", "/", {}, {}, b""))
        original(activity, interaction)

    w.provider.callback_events = [status(StatusKind.DELIVERED, "delivered")]
    w.dataverse.create_interaction = create_interaction  # type: ignore[method-assign]
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m-1", "application/json"))
    # the racing callback could not take the lease: it was queued, not dropped; the owner reported both
    for queued in w.queue.take("callbacks"):
        w.service.handle_queued_callback(QueueMessage("callbacks", queued.body, "q"))
    assert w.dataverse.response_types() == ["sent", "delivered"]
    state = w.repo.get(ROW_ID)
    assert state is not None and state.flush_owner is None and state.due == []


def test_queued_callbacks_keep_the_real_outcome_of_their_events(caplog: pytest.LogCaptureFixture) -> None:
    w = sent_world()
    cases = {
        "unknown": (status(StatusKind.DELIVERED, "delivered", "FK999", None), "callback.unknown_message"),
        "mismatch": (status(StatusKind.DELIVERED, "delivered", sid="FK-other"), "callback.mismatch"),
        "ignored": (status(StatusKind.IGNORED, "queued"), "callback.status_ignored"),
        "unmatched": (InboundEvent("IN1", "+15551234567", "x", "yes"), "reply.unmatched"),
        "applied": (status(StatusKind.DELIVERED, "delivered"), "callback.status"),
    }
    messages = [QueueMessage("callbacks", encode_events("fake", [event]), name) for name, (event, _) in cases.items()]
    with caplog.at_level("INFO", logger="channel"):
        outcomes = w.service.handle_queued_callbacks(messages)
    assert [o.result for o in outcomes] == list(cases)
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert [e for e in events if e.startswith(("callback.", "reply."))] == [logged for _, logged in cases.values()]
    several = QueueMessage("callbacks", encode_events("fake", [event for event, _ in list(cases.values())[:3]]), "many")
    assert w.service.handle_queued_callback(several).result == "ignored+mismatch+unknown"


def test_the_earlier_single_event_queue_format_is_still_read() -> None:
    w = sent_world()
    event = status(StatusKind.DELIVERED, "delivered")
    single = json.dumps({"provider": "fake", **json.loads(encode_events("fake", [event]))["events"][0]}).encode()
    assert decode_events(single) == [("fake", event)]
    assert w.service.handle_queued_callback(QueueMessage("callbacks", single, "old")).result == "applied"
    assert w.dataverse.response_types() == ["sent", "delivered"]
