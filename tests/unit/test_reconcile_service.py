"""The reconciliation use case (shared/app/reconcile.py) through the activity trigger's entry point, with fakes:
every branch (found, absent, unknown, too early, in flight, lease expired, already final, claimed) and the crash
between the ambiguous write and the order's publish."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from shared.adapters.memory import PublishedMessage
from shared.app.settlement import ATTEMPT_PROPERTY
from shared.domain import reconcile
from shared.domain.errors import SendFailedTransient
from shared.domain.models import SendRequest, SendResult
from shared.domain.reconcile import KIND_PROPERTY
from shared.domain.state import ActivityState, SendStatus
from shared.ports import QueueMessage
from tests.fakes import World, world
from tests.helpers import ROW_ID, activity_message

TIMEOUT = SendFailedTransient("read timeout", retry_safe=False)


def activity(message_id: str = "m-1") -> QueueMessage:
    return QueueMessage("activities", activity_message(), message_id, "application/json", 1, {})


def orders(w: World) -> list[PublishedMessage]:
    return [m for m in w.queue.messages if m.application_properties.get(KIND_PROPERTY) == "reconcile"]


def as_received(published: PublishedMessage) -> QueueMessage:
    props = published.application_properties
    return QueueMessage("activities", published.body, published.message_id or "o", published.content_type, 1, props)


def run_latest_order(w: World, *, when_due: bool = True) -> str:
    order = orders(w)[-1]
    assert order.scheduled_at is not None
    if when_due:
        w.clock.current = max(w.clock.current, order.scheduled_at)
    return w.service.handle_activity_message(as_received(order)).result


def record(w: World) -> ActivityState:
    found = w.repo.get(ROW_ID)
    assert found is not None
    return found


def ambiguous_world() -> World:
    w = world()
    w.provider.outcomes = [TIMEOUT]
    assert w.service.handle_activity_message(activity()).result == "ambiguous"
    return w


def test_the_order_is_scheduled_when_the_providers_view_is_settled() -> None:
    w = ambiguous_world()
    [order] = orders(w)
    claimed_at = w.clock.current
    assert order.scheduled_at == claimed_at + timedelta(minutes=2) + timedelta(seconds=600)  # lease + settle delay
    assert order.queue == "activities" and order.message_id == f"reconcile-{ROW_ID}-1"


def test_absent_is_sent_now_exactly_once(caplog: pytest.LogCaptureFixture) -> None:
    w = ambiguous_world()
    with caplog.at_level(logging.INFO, logger="channel"):
        assert run_latest_order(w) == "sent"
    assert [r.body for r in w.provider.sent] == ["Hi Avery"]
    assert record(w).send_status is SendStatus.SENT and record(w).reconcile_note is not None
    assert w.dataverse.response_types() == ["sent"]
    decision = [r for r in caplog.records if r.getMessage().startswith("reconcile.decision")]
    assert len(decision) == 1 and "decision=resent" in decision[0].getMessage()
    assert run_latest_order(w) == "duplicate"  # a second copy of the order sends nothing
    assert len(w.provider.sent) == 1


def test_found_is_recorded_with_the_providers_id_and_nothing_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    w = ambiguous_world()
    w.provider.lookup_results = [reconcile.found("SMfound")]
    with caplog.at_level(logging.INFO, logger="channel"):
        assert run_latest_order(w) == "sent"
    assert w.provider.sent == []
    assert record(w).provider_message_id == "SMfound"
    assert w.indexes.find_by_message("fake", "SMfound") == ROW_ID  # delivery reports find it
    assert w.dataverse.response_types() == ["sent"]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("reconcile.decision"))
    assert "decision=found" in line and "provider_message_id=SMfound" in line and ROW_ID in line
    query = w.provider.lookups[0]
    assert query.to == "+447700900123" and query.body == "Hi Avery"
    assert query.window_end - query.window_start == timedelta(minutes=2)


def test_unknown_is_retried_later_and_never_resent() -> None:
    w = ambiguous_world()
    w.provider.lookup_results = [reconcile.unknown("Twilio Messages list answered HTTP 503", retry_after=90)]
    assert run_latest_order(w) == "retry_scheduled"
    retry = w.queue.messages[-1]
    assert retry.application_properties[ATTEMPT_PROPERTY] == 2
    assert retry.application_properties[KIND_PROPERTY] == "reconcile"
    assert retry.scheduled_at is not None and retry.scheduled_at >= w.clock.current + timedelta(seconds=90)
    assert w.provider.sent == []
    assert record(w).send_status is SendStatus.AMBIGUOUS and record(w).reconcile_attempts == 1
    w.clock.current = retry.scheduled_at
    assert w.service.handle_activity_message(as_received(retry)).result == "sent"  # the retry settles it
    assert len(w.provider.sent) == 1


def test_an_order_delivered_early_is_put_back_without_asking() -> None:
    w = ambiguous_world()
    assert run_latest_order(w, when_due=False) == "retry_scheduled"
    assert w.provider.lookups == [] and w.provider.sent == []


def test_an_order_for_a_record_already_resolved_does_nothing() -> None:
    w = ambiguous_world()
    w.repo.mutate(ROW_ID, reconcile_found)
    assert run_latest_order(w) == "duplicate"
    assert w.provider.lookups == [] and w.provider.sent == []


def reconcile_found(s: ActivityState) -> ActivityState | None:
    from shared.domain import state

    return state.reconcile_found(s, provider="fake", message_id="SMreport", note="delivery report")


def test_a_resend_in_flight_is_waited_for_and_a_dead_one_becomes_ambiguous_again() -> None:
    w = ambiguous_world()
    w.provider.outcomes = [TIMEOUT]  # the resend times out too: ambiguous again, with a new order
    assert run_latest_order(w) == "ambiguous"
    assert len(orders(w)) == 2 and orders(w)[-1].message_id == f"reconcile-{ROW_ID}-2"
    # a worker dies while resending: the record stays sending under its lease
    first = orders(w)[-1]
    w.clock.current = first.scheduled_at or w.clock.current
    w.repo.mutate(ROW_ID, lambda s: _sending_again(s, w))
    assert w.service.handle_activity_message(as_received(first)).result == "retry_scheduled"  # lease still live
    w.clock.advance(minutes=3)
    assert w.service.handle_activity_message(as_received(first)).result == "ambiguous"
    assert record(w).send_status is SendStatus.AMBIGUOUS
    assert orders(w)[-1].message_id == f"reconcile-{ROW_ID}-3"  # a new order for the dead attempt


def _sending_again(s: ActivityState, w: World) -> ActivityState | None:
    from shared.domain import state

    until = w.clock.current + timedelta(minutes=2)
    claimed = state.reconcile_claim(s, provider="fake", lease_until=until, phone_masked="+44***", note="absent")
    return None if claimed is None else claimed


def test_a_claimed_record_met_by_an_order_is_sent() -> None:
    w = ambiguous_world()
    w.provider.outcomes = [SendFailedTransient("Twilio HTTP 503", retry_safe=True)]
    with pytest.raises(SendFailedTransient):
        from shared.app.reconcile import reconcile_activity

        w.clock.current = orders(w)[-1].scheduled_at or w.clock.current
        reconcile_activity(w.service.deps, ROW_ID)
    assert record(w).send_status is SendStatus.CLAIMED
    assert run_latest_order(w) == "sent" and len(w.provider.sent) == 1


def test_a_crash_before_the_order_is_published_is_repaired_by_the_redelivery() -> None:
    w = world()
    w.provider.outcomes = [TIMEOUT]
    w.queue.fail_next = 1  # the order's publish fails: the trigger raises, Service Bus redelivers
    with pytest.raises(ConnectionError):
        w.service.handle_activity_message(activity())
    assert record(w).send_status is SendStatus.AMBIGUOUS and orders(w) == []
    assert w.service.handle_activity_message(activity()).result == "duplicate"
    assert len(orders(w)) == 1
    assert run_latest_order(w) == "sent" and len(w.provider.sent) == 1


def test_a_contact_that_can_no_longer_be_sent_to_is_left_for_an_operator() -> None:
    w = ambiguous_world()
    w.dataverse.rows[("contact", next(k for t, k in w.dataverse.rows if t == "contact"))]["mobilephone"] = None
    assert run_latest_order(w) == "ambiguous"
    assert record(w).send_status is SendStatus.AMBIGUOUS and "no longer" in (record(w).reconcile_note or "")
    assert w.provider.lookups == [] and w.provider.sent == []


def test_a_malformed_order_is_poison() -> None:
    w = world()
    bad = QueueMessage("activities", b"{}", "bad", "application/json", 1, {KIND_PROPERTY: "reconcile"})
    assert w.service.handle_activity_message(bad).result == "poisoned"
    [poisoned] = w.queue.on("activities-poison")
    assert poisoned.application_properties["DeadLetterReason"] == "invalid_reconcile"


def test_an_unknown_that_can_never_be_known_is_not_retried() -> None:
    w = ambiguous_world()
    w.provider.lookup_results = [reconcile.unknown("outside the replay window", final=True)]
    published = len(w.queue.messages)
    assert run_latest_order(w) == "ambiguous"
    assert len(w.queue.messages) == published and w.provider.sent == []
    assert "outside the replay window" in (record(w).reconcile_note or "")


def test_a_claim_whose_lease_ran_out_before_the_call_sends_nothing() -> None:
    """Regression (found by the fault run with a short RECONCILE_AFTER_SECONDS): the reconciliation's lookup took
    longer than a lease, the resend was claimed with a lease computed before it, and the request left after its own
    send window: the next lookup could not see it and sent a second SMS."""
    w = ambiguous_world()
    order = orders(w)[-1]
    assert order.scheduled_at is not None
    w.clock.current = order.scheduled_at
    slow = w.dataverse.get_row

    def slow_read(*args: object, **kwargs: object) -> dict[str, object]:
        w.clock.advance(minutes=3)  # a Dataverse read with timeouts and retries, longer than the lease
        return slow(*args, **kwargs)  # type: ignore[arg-type]

    w.dataverse.get_row = slow_read  # type: ignore[method-assign]
    assert w.service.handle_activity_message(as_received(order)).result == "sent"
    assert len(w.provider.sent) == 1
    until = record(w).attempt_until
    assert until is not None and w.clock.current <= until  # the request left inside its own send window


def test_a_send_whose_lease_expired_before_the_call_is_not_made() -> None:
    w = world()
    insert = w.store.insert

    def slow_insert(partition: str, row: str, values: dict[str, object]) -> str:
        if partition.startswith("phone-"):
            w.clock.advance(minutes=3)  # the worker stalls between the claim and the call, past its lease
        return insert(partition, row, values)

    w.store.insert = slow_insert  # type: ignore[method-assign]
    assert w.service.handle_activity_message(activity()).result == "retry_scheduled"
    assert w.provider.sent == []
    assert record(w).send_status is SendStatus.SENDING  # the next delivery makes it ambiguous and reconciles it


def test_a_due_order_is_settled_even_when_the_clock_ticks_between_reads() -> None:
    """Regression (found end to end with the real clock): the due check read the clock again, so a record already
    due compared as "later" by microseconds and its order was rescheduled at once, for ever."""
    w = ambiguous_world()
    order = orders(w)[-1]
    assert order.scheduled_at is not None
    w.clock.current = order.scheduled_at + timedelta(minutes=5)
    base = w.clock.now

    def ticking() -> datetime:
        w.clock.current += timedelta(microseconds=1)
        return base()

    w.clock.now = ticking  # type: ignore[method-assign]
    assert w.service.handle_activity_message(as_received(order)).result == "sent"
    assert len(w.provider.sent) == 1


def test_a_send_accepted_before_a_timeout_is_found_with_short_links_and_normalisation() -> None:
    """With link tracking and GSM normalisation on, the provider holds the short-linked, normalised text: the lookup
    must compare that text, else the message it holds looks absent and the contact gets it twice."""
    from shared.app.policy import SendingPolicy
    from shared.domain.links import LinkConfig

    w = world(
        body="Hi {{contact.firstname}} \u2014 see https://contoso.example/offer?id=7",
        links=LinkConfig("https://app.example/api", timedelta(days=90)),
        policy=SendingPolicy(gsm_normalize=True),
    )
    accept = w.provider.send

    def accepted_then_timeout(request: SendRequest) -> SendResult:
        accept(request)  # the provider took it ...
        raise TIMEOUT  # ... and the answer was lost

    w.provider.send = accepted_then_timeout  # type: ignore[method-assign]
    assert w.service.handle_activity_message(activity()).result == "ambiguous"
    [original] = w.provider.sent
    assert "https://app.example/api/l/" in original.body and "\u2014" not in original.body
    assert run_latest_order(w) == "sent"
    [query] = w.provider.lookups
    assert query.body == original.body
    assert w.provider.sent == [original]  # found: nothing was sent again
    assert record(w).provider_message_id == w.provider.accepted_ids[0]
