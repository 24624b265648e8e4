"""ACS provider: the SDK send path against the loopback emulator, error mapping, and Event Grid callbacks."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken

from devtools.emulators.acs import AcsEmulator
from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import InboundEvent, InboundHttpRequest, SendRequest, StatusEvent, StatusKind
from shared.providers.acs import AcsProvider
from tests.helpers import ROW_ID, fixture_bytes

SECRET = "unit-eventgrid-secret-0123456789"
SENDER = "+18005550100"
PHONE = "+447700900123"
SAMPLE_ID = "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910"
SAMPLE_TAG = "Optional customer-tag set in the original message"


class FakeCredential:
    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def acs() -> Iterator[AcsEmulator]:
    with AcsEmulator() as emulator:
        yield emulator


def provider(emulator: AcsEmulator, **overrides: Any) -> AcsProvider:
    options: dict[str, Any] = dict(
        endpoint=emulator.url,
        sender=SENDER,
        eventgrid_secret=SECRET,
        access_key=emulator.access_key,
        session=requests.Session(),
        timeout=1.0,
    )
    options.update(overrides)
    return AcsProvider(**options)


def send_request(to: str = PHONE) -> SendRequest:
    return SendRequest(to, "Hello", ROW_ID, "https://app.example/api/callbacks/acs?activity=" + ROW_ID, ROW_ID)


# --- send ------------------------------------------------------------------------------------------
def test_send_with_access_key_is_hmac_signed_and_tagged(acs: AcsEmulator) -> None:
    result = provider(acs).send(send_request())
    [message] = acs.messages
    assert result.provider_message_id == message.message_id
    assert (message.to, message.from_, message.message, message.auth) == (PHONE, SENDER, "Hello", "hmac")
    assert message.tag == ROW_ID and message.enable_delivery_report is True
    assert message.repeatability_request_id and uuid.UUID(message.repeatability_request_id)
    assert message.repeatability_first_sent and message.repeatability_first_sent.endswith("GMT")
    assert acs.auth_failures == []
    [request] = acs.requests
    assert request.target == "/sms?api-version=2021-03-07"


def test_wrong_access_key_is_a_configuration_error_retried_later(acs: AcsEmulator) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
    with pytest.raises(SendFailedTransient) as error:
        provider(acs, access_key=wrong).send(send_request())
    assert error.value.retry_safe is True and "401" in error.value.detail
    assert acs.messages == [] and acs.auth_failures == ["HMAC signature mismatch"]


def test_send_with_entra_credential_uses_bearer_token() -> None:
    credential = FakeCredential("entra-token")
    with AcsEmulator(bearer_token="entra-token") as emulator:
        provider(emulator, access_key=None, credential=credential).send(send_request())
        assert [m.auth for m in emulator.messages] == ["bearer"]
    assert credential.scopes == [("https://communication.azure.com//.default",)]
    with AcsEmulator(bearer_token="another-token") as emulator, pytest.raises(SendFailedTransient) as error:
        provider(emulator, access_key=None, credential=credential).send(send_request())
    assert error.value.retry_safe is True


def test_recipient_rejection_is_permanent(acs: AcsEmulator) -> None:
    acs.reject(PHONE, 400, "Invalid To phone number format.")
    with pytest.raises(SendRejected) as error:
        provider(acs).send(send_request())
    assert error.value.code == "400" and "Invalid" in error.value.detail and not error.value.opted_out
    acs.reject(PHONE, 403, "Message sending failed: recipient has opted out.")
    with pytest.raises(SendRejected) as error:
        provider(acs).send(send_request())
    assert error.value.opted_out


@pytest.mark.parametrize(
    ("status", "retry_safe"), [(429, True), (500, True), (502, True), (503, True), (504, False), (403, True)]
)
def test_http_errors_map_to_transient(acs: AcsEmulator, status: int, retry_safe: bool) -> None:
    headers = {"Retry-After": "7"} if status == 429 else None
    body = {"error": {"code": "X", "message": f"status {status}"}}
    acs.inject("POST", "^/sms", status=status, body=body, headers=headers, times=None)
    with pytest.raises(SendFailedTransient) as error:
        provider(acs).send(send_request())
    assert error.value.retry_safe is retry_safe
    if status == 429:
        assert error.value.retry_after == 7.0
    assert len(acs.requests) == 1  # no hidden in-call retry for status errors


def test_read_timeout_is_ambiguous(acs: AcsEmulator) -> None:
    acs.inject("POST", "^/sms", status=0, delay=1.5, times=None)
    with pytest.raises(SendFailedTransient) as error:
        provider(acs, timeout=0.5).send(send_request())
    assert error.value.retry_safe is False
    assert len(acs.requests) == 2  # one repeatable in-call retry, same repeatabilityRequestId


def test_dropped_answer_is_retried_in_call_with_the_same_repeatability_id(acs: AcsEmulator) -> None:
    original = acs._route

    def answer_then_drop(request: Any) -> Any:  # the service executes it, the answer is lost once
        response = original(request)
        if len(acs.requests) == 1:
            response.drop = True
        return response

    acs._route = answer_then_drop  # type: ignore[method-assign]
    result = provider(acs).send(send_request())
    assert len(acs.requests) == 2
    assert [m.message_id for m in acs.messages] == [result.provider_message_id]  # executed once
    bodies = [json.loads(r.body)["smsRecipients"][0]["repeatabilityRequestId"] for r in acs.requests]
    assert bodies[0] == bodies[1]


def test_connect_failure_is_safe_to_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = AcsProvider(
        endpoint=f"http://127.0.0.1:{port}",
        sender=SENDER,
        eventgrid_secret=SECRET,
        access_key="a2V5",
        session=requests.Session(),
    )
    with pytest.raises(SendFailedTransient) as error:
        closed.send(send_request())
    assert error.value.retry_safe is True


# --- callbacks -------------------------------------------------------------------------------------
def callback(
    body: bytes, *, secret: str | None = SECRET, method: str = "POST", headers: dict[str, str] | None = None
) -> InboundHttpRequest:
    query = {} if secret is None else {"secret": secret}
    raw = "" if secret is None else f"secret={secret}"
    return InboundHttpRequest(method, "/api/callbacks/acs", query, headers or {}, body, raw)


def sample(name: str, **replace: str) -> bytes:
    text = fixture_bytes("acs", name).decode()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


@pytest.fixture
def acs_provider(acs: AcsEmulator) -> AcsProvider:
    return provider(acs)


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
def test_a_wrong_secret_refuses_even_a_handshake(acs_provider: AcsProvider, method: str) -> None:
    body = fixture_bytes("acs", "eventgrid_subscription_validation.json")
    headers = {"webhook-request-origin": "eventgrid.azure.net"}
    for secret in ("wrong-secret-wrong-secret-000", SECRET[:-1]):
        with pytest.raises(CallbackRejected) as error:
            acs_provider.handle_callback(callback(body, secret=secret, method=method, headers=headers))
        assert error.value.status == 403


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
def test_a_handshake_without_any_secret_is_answered(acs_provider: AcsProvider, method: str) -> None:
    """Event Grid may not send the delivery attribute on the validation request; answering it grants nothing."""
    body = fixture_bytes("acs", "eventgrid_subscription_validation.json") if method == "POST" else b""
    headers = {"webhook-request-origin": "eventgrid.azure.net"}
    for secret in (None, ""):
        result = acs_provider.handle_callback(callback(body, secret=secret, method=method, headers=headers))
        assert result.reply.status == 200 and result.events == []


def test_events_without_a_secret_are_refused(acs_provider: AcsProvider) -> None:
    report = fixture_bytes("acs", "eventgrid_delivery_report.json")
    for secret in (None, ""):
        with pytest.raises(CallbackRejected) as error:
            acs_provider.handle_callback(callback(report, secret=secret))
        assert error.value.status == 401
    with pytest.raises(CallbackRejected) as error:
        acs_provider.handle_callback(callback(report, secret=None, method="GET"))
    assert error.value.status == 401


def test_subscription_validation_handshake(acs_provider: AcsProvider) -> None:
    result = acs_provider.handle_callback(callback(fixture_bytes("acs", "eventgrid_subscription_validation.json")))
    assert result.events == []
    assert result.reply.status == 200
    assert json.loads(result.reply.body) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_cloudevents_options_handshake(acs_provider: AcsProvider) -> None:
    headers = {"webhook-request-origin": "eventgrid.azure.net"}
    result = acs_provider.handle_callback(callback(b"", method="OPTIONS", headers=headers))
    assert result.reply.status == 200 and result.events == []
    assert result.reply.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert result.reply.headers["Allow"] == "POST"
    with pytest.raises(CallbackRejected) as error:
        acs_provider.handle_callback(callback(b"", method="OPTIONS"))
    assert error.value.status == 400


@pytest.mark.parametrize(
    "name",
    ["eventgrid_delivery_report.json", "eventgrid_delivery_report_pascal.json", "cloudevents_delivery_report.json"],
)
def test_delivery_report_samples_parse(acs_provider: AcsProvider, name: str) -> None:
    result = acs_provider.handle_callback(callback(sample(name, **{SAMPLE_TAG: ROW_ID})))
    [event] = result.events
    assert isinstance(event, StatusEvent)
    assert event.provider_message_id == SAMPLE_ID and event.event_id == SAMPLE_ID
    assert event.kind is StatusKind.DELIVERED and event.raw_status == "delivered"
    assert event.detail == "No error."
    assert event.activity_hint == (None if "pascal" in name else ROW_ID)  # the 2021 sample has no tag
    assert result.reply.status == 200


def test_failed_report_keeps_details_without_phone_numbers(acs_provider: AcsProvider) -> None:
    body = sample(
        "eventgrid_delivery_report.json",
        **{'"Delivered"': '"Failed"', "No error.": "Undeliverable to +447700900123", SAMPLE_TAG: "not-a-guid"},
    )
    [event] = acs_provider.handle_callback(callback(body)).events
    assert isinstance(event, StatusEvent) and event.kind is StatusKind.FAILED
    assert event.detail is not None and "900123" not in event.detail and event.detail.endswith("0123")
    assert event.activity_hint is None  # a tag that is not an activity row id is not trusted as one


@pytest.mark.parametrize(
    "name", ["eventgrid_sms_received.json", "eventgrid_sms_received_pascal.json", "cloudevents_sms_received_batch.json"]
)
def test_sms_received_samples_parse(acs_provider: AcsProvider, name: str) -> None:
    [event] = acs_provider.handle_callback(callback(fixture_bytes("acs", name))).events
    assert isinstance(event, InboundEvent)
    assert event.sender == "+15555555555" and event.recipient == "+15555555555"
    assert event.text.startswith("Great to connect with")
    assert event.event_id == event.provider_message_id == "Incoming_20200918002745d29ebbea-3341-4466-9690-0a03af35228e"


def test_batches_mixed_and_unknown_events(acs_provider: AcsProvider) -> None:
    report = json.loads(fixture_bytes("acs", "eventgrid_delivery_report.json"))[0]
    reply = json.loads(fixture_bytes("acs", "eventgrid_sms_received_pascal.json"))[0]
    other = {**report, "eventType": "Microsoft.Communication.ChatMessageReceived", "id": "x"}
    broken = {**report, "data": {"deliveryStatus": "Delivered"}, "id": "y"}
    events = acs_provider.handle_callback(callback(json.dumps([report, other, broken, reply]).encode())).events
    assert [type(e).__name__ for e in events] == ["StatusEvent", "InboundEvent"]


def test_malformed_bodies_and_methods(acs_provider: AcsProvider) -> None:
    for body in (b"not json", b"[1, 2]", b'[{"id": "1"}]'):
        with pytest.raises(CallbackRejected) as error:
            acs_provider.handle_callback(callback(body))
        assert error.value.status == 400
    with pytest.raises(CallbackRejected) as error:
        acs_provider.handle_callback(callback(b"", method="GET"))
    assert error.value.status == 405


def test_emulator_events_in_both_casings_parse_alike(acs: AcsEmulator, acs_provider: AcsProvider) -> None:
    acs_provider.send(send_request())
    message = acs.messages[0]
    for schema in ("eventgrid", "cloudevents"):
        for pascal in (False, True):
            event = acs.delivery_report(message, "Failed", schema=schema, pascal=pascal)
            [parsed] = acs_provider.handle_callback(callback(json.dumps([event]).encode())).events
            assert isinstance(parsed, StatusEvent)
            assert (parsed.kind, parsed.activity_hint, parsed.provider_message_id) == (
                StatusKind.FAILED,
                ROW_ID,
                message.message_id,
            )
