"""Real-time journeys: an ambiguous relayed send is reconciled on the relay's retry (issue #13)."""

from __future__ import annotations

import json
from typing import Any

from shared.domain import reconcile
from shared.domain.errors import SendFailedTransient
from shared.domain.rtj import InvalidPayload, parse_outbound
from shared.domain.rtj_state import RtjStatus
from tests.unit.test_rtj import DEFINITION, request, service

BODY = {
    "ChannelDefinitionId": DEFINITION,
    "RequestId": "r1",
    "From": "+15005550009",
    "To": "+447700900123",
    "Message": {"text": "Your table is booked"},
}


def relay(svc: Any) -> dict[str, Any]:
    return dict(json.loads(svc.handle_rtj_outbound(request(BODY)).body))


def ambiguous_first() -> tuple[Any, Any]:
    svc, _, provider = service()
    provider.outcomes = [SendFailedTransient("read timeout", retry_safe=False)]
    answer = relay(svc)
    assert answer["Status"] == "NotSent" and answer["Details"]["Reason"] == "Ambiguous"
    return svc, provider


def test_a_retry_before_the_providers_view_is_settled_gets_the_same_answer() -> None:
    svc, provider = ambiguous_first()
    assert relay(svc)["Details"]["Reason"] == "Ambiguous" and provider.lookups == [] and provider.sent == []


def test_a_settled_retry_finds_the_message_and_answers_sent() -> None:
    svc, provider = ambiguous_first()
    provider.lookup_results = [reconcile.found("SMrelayed")]
    svc.deps.clock.advance(minutes=15)
    answer = relay(svc)
    assert answer["Status"] == "Sent" and answer["MessageId"] == "SMrelayed" and provider.sent == []
    query = provider.lookups[0]
    assert (query.to, query.body, query.sender) == ("+447700900123", "Your table is booked", "+15005550009")
    assert svc.deps.records.indexes.find_by_message("fake", "SMrelayed") is not None


def test_a_settled_retry_sends_a_provably_absent_message_once() -> None:
    svc, provider = ambiguous_first()
    svc.deps.clock.advance(minutes=15)
    answer = relay(svc)
    assert answer["Status"] == "Sent" and len(provider.sent) == 1
    assert relay(svc)["MessageId"] == answer["MessageId"] and len(provider.sent) == 1  # a further retry: a replay


def test_a_retry_that_cannot_tell_stays_ambiguous_and_sends_nothing() -> None:
    svc, provider = ambiguous_first()
    provider.lookup_results = [reconcile.unknown("Twilio Messages list answered HTTP 503")]
    svc.deps.clock.advance(minutes=15)
    assert relay(svc)["Details"]["Reason"] == "Ambiguous" and provider.sent == []
    payload = parse_outbound(json.dumps(BODY).encode())[2]
    assert not isinstance(payload, InvalidPayload)
    record = svc.deps.records.rtj.get(payload.key)
    assert record is not None and record.status is RtjStatus.AMBIGUOUS and record.reconcile_attempts == 1
