"""Reconciliation of ambiguous sends (issue #13), per provider, through the service against each provider's emulator:
the provider took it (found / replayed: one SMS), it did not (sent now: one SMS), it cannot tell (retried later,
nothing sent)."""

from __future__ import annotations

from shared.adapters.memory import PublishedMessage
from shared.app.settlement import ATTEMPT_PROPERTY
from shared.domain.reconcile import KIND_PROPERTY
from shared.domain.state import SendStatus
from shared.ports import QueueMessage
from tests.contract.conftest import PHONE, Contract
from tests.helpers import ROW_ID, activity_message


def published_orders(contract: Contract) -> list[PublishedMessage]:
    return [m for m in contract.queue.messages if m.application_properties.get(KIND_PROPERTY) == "reconcile"]


def _deliver(contract: Contract) -> str:
    message = QueueMessage("activities", activity_message(), "m1", "application/json")
    return contract.service.handle_activity_message(message).result


def _run_order(contract: Contract) -> str:
    """Deliver the latest reconciliation order when it is due (as Service Bus does with a scheduled message)."""
    order = published_orders(contract)[-1]
    assert order.scheduled_at is not None
    contract.clock.current = max(contract.clock.current, order.scheduled_at)
    message = QueueMessage(
        "activities", order.body, order.message_id or "r", order.content_type, 1, order.application_properties
    )
    return contract.service.handle_activity_message(message).result


def _state(contract: Contract) -> SendStatus:
    record = contract.service.deps.records.activities.get(ROW_ID)
    assert record is not None
    return record.send_status


NO_LOOKUP = {"whatsapp"}  # Meta's Cloud API lists no sent messages: an ambiguous send waits for its status webhook


def test_a_send_the_provider_took_is_reconciled_without_a_second_sms(contract: Contract) -> None:
    if contract.harness.name in NO_LOOKUP:
        return _left_for_its_delivery_report(contract, taken=True)
    contract.harness.lose_answers(2)  # the attempt (and ACS's in-call repeatable retry): taken, answers lost
    assert _deliver(contract) == "ambiguous"
    assert len(contract.harness.sent()) == 1
    assert _run_order(contract) == "sent"
    sent = contract.harness.sent()
    assert [(s.to, s.body) for s in sent] == [(PHONE, "Hi Avery")]  # still one SMS
    record = contract.service.deps.records.activities.get(ROW_ID)
    assert record is not None and record.provider_message_id == sent[0].provider_message_id
    assert contract.response_types() == ["sent"]
    assert _deliver(contract) == "duplicate"


def test_a_send_the_provider_never_had_is_sent_once_when_reconciled(contract: Contract) -> None:
    if contract.harness.name in NO_LOOKUP:
        return _left_for_its_delivery_report(contract, taken=False)
    contract.harness.time_out_without_taking()  # a gateway timeout: ambiguous, but the provider has nothing
    assert _deliver(contract) == "ambiguous"
    assert contract.harness.sent() == []
    assert _run_order(contract) == "sent"
    assert [(s.to, s.body) for s in contract.harness.sent()] == [(PHONE, "Hi Avery")]
    assert contract.response_types() == ["sent"]


def test_a_lookup_that_cannot_tell_never_resends(contract: Contract) -> None:
    contract.harness.lose_answers(2)
    assert _deliver(contract) == "ambiguous"
    contract.harness.fail_lookups(contract.clock)
    if contract.harness.name in NO_LOOKUP:
        assert _run_order(contract) == "ambiguous"
    elif contract.harness.name == "twilio":  # the list may answer later: retried with backoff
        assert _run_order(contract) == "retry_scheduled"
        retry = contract.queue.messages[-1]
        assert retry.application_properties[ATTEMPT_PROPERTY] == 2 and retry.scheduled_at is not None
    else:  # past ACS's replay window nobody can ever tell: left for a delivery report, not retried
        assert _run_order(contract) == "ambiguous"
        assert ATTEMPT_PROPERTY not in contract.queue.messages[-1].application_properties
    assert len(contract.harness.sent()) == 1 and _state(contract) is SendStatus.AMBIGUOUS
    assert contract.response_types() == []


def _left_for_its_delivery_report(contract: Contract, *, taken: bool) -> None:
    """A provider that cannot be asked: the order leaves the send ambiguous (never resent, nothing reported); a
    delivery report, which carries the activity, is what settles a send the provider took."""
    if taken:
        contract.harness.lose_answers(1)
    else:
        contract.harness.time_out_without_taking()
    assert _deliver(contract) == "ambiguous"
    assert _run_order(contract) == "ambiguous"
    assert len(contract.harness.sent()) == (1 if taken else 0) and _state(contract) is SendStatus.AMBIGUOUS
    assert contract.response_types() == []
