"""What every provider module must do, driven through the ChannelService (in-memory Dataverse, state and queue)
with sends going over HTTP to the provider's loopback emulator. Parametrised over tests/contract/harnesses.py."""

from __future__ import annotations

from shared.domain.models import InboundEvent, StatusEvent, StatusKind
from shared.ports import QueueMessage
from tests.contract.conftest import PHONE, Contract
from tests.helpers import CONTACT_ID, ROW_ID, activity_message


def _deliver(contract: Contract) -> str:
    return contract.service.handle_activity_message(
        QueueMessage(queue="activities", body=activity_message(), message_id="m1", content_type="application/json")
    ).result


def test_send_accepted_records_sent_once(contract: Contract) -> None:
    assert _deliver(contract) == "sent"
    assert _deliver(contract) == "duplicate"
    sent = contract.harness.sent()
    assert [(s.to, s.body) for s in sent] == [(PHONE, "Hi Avery")]
    assert contract.response_types() == ["sent"]
    state = contract.service.deps.records.activities.get(ROW_ID)
    assert state is not None and state.provider_message_id == sent[0].provider_message_id


def test_permanent_rejection_records_failed(contract: Contract) -> None:
    contract.harness.reject(PHONE)
    assert _deliver(contract) == "failed"
    assert contract.harness.sent() == []
    assert contract.response_types() == ["failed"]
    # nothing rescheduled (a provider with a replay window, ACS, has its reconciliation watchdog order: issue #13)
    assert [m for m in contract.queue.messages if m.application_properties.get("channel-kind") != "reconcile"] == []


def test_transient_failure_is_rescheduled_and_sent_once_later(contract: Contract) -> None:
    contract.harness.fail_sends()
    assert _deliver(contract) == "retry_scheduled"
    assert contract.harness.sent() == [] and contract.response_types() == []
    retry = contract.queue.messages.pop()
    assert retry.scheduled_at is not None
    contract.harness.heal()
    outcome = contract.service.handle_activity_message(
        QueueMessage("activities", retry.body, "m1:retry1", retry.content_type, 2, retry.application_properties)
    )
    assert outcome.result == "sent"
    assert len(contract.harness.sent()) == 1
    assert contract.response_types() == ["sent"]


def test_delivered_and_failed_reports_map_to_interactions(contract: Contract) -> None:
    _deliver(contract)
    sent = contract.harness.sent()[0]
    request = contract.harness.status_request(contract.callback_url, sent, ROW_ID, delivered=True)
    callback = contract.service.deps.provider.handle_callback(request)
    [event] = callback.events
    assert isinstance(event, StatusEvent)
    assert event.kind is StatusKind.DELIVERED
    assert event.provider_message_id == sent.provider_message_id
    assert event.activity_hint == ROW_ID
    assert event.event_id
    assert 200 <= contract.service.handle_callback(contract.harness.name, request).status < 300
    assert contract.response_types() == ["sent", "delivered"]


def test_failed_report_records_failed(contract: Contract) -> None:
    _deliver(contract)
    sent = contract.harness.sent()[0]
    request = contract.harness.status_request(contract.callback_url, sent, ROW_ID, delivered=False)
    assert 200 <= contract.service.handle_callback(contract.harness.name, request).status < 300
    assert contract.response_types() == ["sent", "failed"]


def test_duplicate_event_records_once(contract: Contract) -> None:
    _deliver(contract)
    sent = contract.harness.sent()[0]
    request = contract.harness.status_request(contract.callback_url, sent, ROW_ID, delivered=True)
    provider = contract.service.deps.provider
    assert provider.handle_callback(request).events == provider.handle_callback(request).events  # same event id
    for _ in range(2):
        assert 200 <= contract.service.handle_callback(contract.harness.name, request).status < 300
    assert contract.response_types() == ["sent", "delivered"]


def test_inbound_reply_records_keyword(contract: Contract) -> None:
    _deliver(contract)
    request = contract.harness.inbound_request(contract.callback_url, PHONE, "Yes please")
    [event] = contract.service.deps.provider.handle_callback(request).events
    assert isinstance(event, InboundEvent) and event.sender == PHONE and event.event_id
    assert 200 <= contract.service.handle_callback(contract.harness.name, request).status < 300
    assert contract.service.handle_callback(contract.harness.name, request).status < 300  # redelivered
    assert contract.response_types() == ["sent", "keyword:yes"]
    assert contract.dataverse.updates == []


def test_opt_out_sets_compliance_and_records_stop(contract: Contract) -> None:
    _deliver(contract)
    request = contract.harness.inbound_request(contract.callback_url, PHONE, "STOP")
    assert 200 <= contract.service.handle_callback(contract.harness.name, request).status < 300
    assert contract.response_types() == ["sent", "keyword:stop"]
    assert ("contact", CONTACT_ID, {"donotphone": True}) in contract.dataverse.updates


def test_forged_request_is_refused_and_records_nothing(contract: Contract) -> None:
    _deliver(contract)
    sent = contract.harness.sent()[0]
    request = contract.harness.forged_request(contract.callback_url, sent, ROW_ID)
    reply = contract.service.handle_callback(contract.harness.name, request)
    assert reply.status in (401, 403)
    assert contract.response_types() == ["sent"]
