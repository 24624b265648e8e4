from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.adapters.rtj_auth import SecretAuthorizer
from shared.app import rtj_events
from shared.app.config import RtjConfig
from shared.app.deps import RtjDeps, build_deps
from shared.domain.errors import CallbackRejected
from shared.domain.models import InboundEvent, InboundHttpRequest, StatusEvent, StatusKind
from shared.domain.rtj import InvalidPayload, parse_outbound, response_json
from shared.service import ChannelService
from tests.fakes import FakeClock, FakeDataverse, FakeProvider, config

DEFINITION = "0f6e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c"
SECRET = "s" * 32


class FakeChannelsApi:
    def __init__(self) -> None:
        self.notifications: list[dict[str, object]] = []
        self.inbound: list[dict[str, object]] = []
        self.whoami_calls = 0

    def organization_id(self) -> str:
        self.whoami_calls += 1
        return "org-1"

    def channels_notification(self, payload: dict[str, object]) -> None:
        self.notifications.append(dict(payload))

    def channels_inbound(self, payload: dict[str, object]) -> None:
        self.inbound.append(dict(payload))


def service(secret: str | None = SECRET) -> tuple[ChannelService, FakeChannelsApi, FakeProvider]:
    api, provider, clock = FakeChannelsApi(), FakeProvider(), FakeClock()
    rtj = RtjDeps(
        RtjConfig("https://app/api/callbacks/fake", None, timedelta(minutes=2)), api, SecretAuthorizer(secret)
    )
    deps = build_deps(config(), FakeDataverse(), provider, MemoryStore(), MemoryQueue(), clock, rtj=rtj)
    return ChannelService(deps), api, provider


def request(body: dict[str, object]) -> InboundHttpRequest:
    return InboundHttpRequest("POST", "/api/rtj/outbound", {}, {"x-channel-secret": SECRET}, json.dumps(body).encode())


def test_camel_case_and_string_wrapped_payloads_parse() -> None:
    inner = {"channelDefinitionId": DEFINITION, "requestId": "r1", "to": "+447700900123", "message": {"Text": "hi"}}
    for body in (json.dumps(inner), json.dumps(json.dumps(inner))):
        definition, request_id, parsed = parse_outbound(body.encode())
        assert (definition, request_id) == (DEFINITION, "r1")
        assert not isinstance(parsed, InvalidPayload) and parsed.text() == "hi"


def test_ids_are_required_to_answer() -> None:
    with pytest.raises(CallbackRejected):
        parse_outbound(json.dumps({"RequestId": "r1"}).encode())
    with pytest.raises(CallbackRejected):
        parse_outbound(json.dumps({"ChannelDefinitionId": DEFINITION}).encode())


def test_response_shape() -> None:
    assert json.loads(response_json(DEFINITION, "r1", "NotSent", reason="X", detail="y")) == {
        "ChannelDefinitionId": DEFINITION,
        "RequestId": "r1",
        "Status": "NotSent",
        "Details": {"Reason": "X", "Message": "y"},
    }


def test_unconfigured_secret_refuses_everything() -> None:
    svc, _, provider = service(secret=None)
    body = {"ChannelDefinitionId": DEFINITION, "RequestId": "r", "To": "+447700900123", "Message": {"text": "x"}}
    assert svc.handle_rtj_outbound(request(body)).status == 503
    assert provider.sent == []


def test_each_delivery_report_once_and_never_backwards() -> None:
    svc, api, _ = service()
    body = {
        "ChannelDefinitionId": DEFINITION,
        "RequestId": "r1",
        "From": "+15005550009",
        "To": "+447700900123",
        "Message": {"text": "x"},
    }
    answer = json.loads(svc.handle_rtj_outbound(request(body)).body)
    payload = parse_outbound(json.dumps(body).encode())[2]
    assert not isinstance(payload, InvalidPayload)
    for kind in (StatusKind.DELIVERED, StatusKind.DELIVERED, StatusKind.FAILED):
        svc.apply_event("fake", StatusEvent(answer["MessageId"], kind, kind.value, activity_hint=payload.key))
    assert [n["Status"] for n in api.notifications] == ["Delivered"]


def test_duplicate_inbound_webhook_is_forwarded_once() -> None:
    svc, api, _ = service()
    body = {
        "ChannelDefinitionId": DEFINITION,
        "RequestId": "r1",
        "From": "+15005550009",
        "To": "+447700900123",
        "Message": {"text": "x"},
    }
    svc.handle_rtj_outbound(request(body))
    event = InboundEvent("SM1", "+447700900123", "+15005550009", "hello")
    assert svc.apply_event("fake", event).result == "applied"
    assert svc.apply_event("fake", event).result == "duplicate"
    assert len(api.inbound) == 1
    other_number = InboundEvent("SM2", "+447700900123", "+19999999999", "x")
    assert rtj_events.apply_inbound(svc.deps, "fake", other_number) is None
