"""Meta's WhatsApp Cloud API provider (issue #17): the message objects, error classes, webhooks and the handshake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests

from devtools.emulators.whatsapp import WhatsAppEmulator, hub_signature
from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import InboundEvent, InboundHttpRequest, SendRequest, StatusEvent, StatusKind
from shared.domain.whatsapp import RichContent, TemplateMessage
from shared.providers.whatsapp import WhatsAppProvider, message_body
from tests.helpers import ROW_ID, fixture_bytes

SECRET = "unit-whatsapp-app-secret-0123456789"
VERIFY = "unit-verify-token-0123456789"
PHONE = "+447700900123"


@pytest.fixture
def meta() -> Iterator[WhatsAppEmulator]:
    emulator = WhatsAppEmulator(app_secret=SECRET)
    emulator.add_template("spring_offer", "Hi {{1}}, {{2}} off this week", "en_GB")
    try:
        yield emulator
    finally:
        emulator.stop()


def provider(meta: WhatsAppEmulator, **overrides: object) -> WhatsAppProvider:
    values: dict[str, object] = dict(
        phone_number_id=meta.phone_number_id,
        access_token=meta.access_token,
        app_secret=SECRET,
        verify_token=VERIFY,
        api_base_url=meta.api_base_url,
        session=requests.Session(),
        opt_out_payloads=frozenset({"stop", "unsubscribe"}),
        timeout=2.0,
    )
    values.update(overrides)
    return WhatsAppProvider(**values)  # type: ignore[arg-type]


def request(content: RichContent | None = None, body: str = "Hello") -> SendRequest:
    return SendRequest(
        PHONE, body, ROW_ID, f"https://app.example/api/callbacks/whatsapp?activity={ROW_ID}", ROW_ID, content=content
    )


TEMPLATE = TemplateMessage("spring_offer", "en_GB", (("1", "Avery"), ("2", "20%")))


def test_template_is_sent_with_language_and_body_parameters(meta: WhatsAppEmulator) -> None:
    result = provider(meta).send(request(RichContent(template=TEMPLATE)))
    [sent] = meta.messages
    assert result.provider_message_id == sent.id and result.status == "accepted"
    assert (sent.template, sent.language, sent.text) == ("spring_offer", "en_GB", "Hi Avery, 20% off this week")
    assert sent.callback_data == ROW_ID and sent.to == "447700900123"
    assert meta.requests[0].headers["Authorization"] == "<redacted>"  # the bearer token is never logged


def test_message_objects_match_the_documented_shapes() -> None:
    media = "https://cdn.example/offer.jpg"
    named = TemplateMessage("offer", None, (("name", "Avery"),))
    body = message_body(request(RichContent(template=named, media_url=media)))
    assert body["type"] == "template" and body["messaging_product"] == "whatsapp"
    assert body["template"] == {
        "name": "offer",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": media}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Avery", "parameter_name": "name"}]},
        ],
    }
    assert message_body(request())["text"] == {"preview_url": False, "body": "Hello"}
    assert message_body(request(RichContent(media_url=media)))["image"] == {"link": media, "caption": "Hello"}


@pytest.mark.parametrize(
    ("fixture", "status", "expected"),
    [
        ("error_throughput.json", 400, SendFailedTransient),
        ("error_template_missing.json", 400, SendRejected),
        ("error_not_allowed_recipient.json", 400, SendRejected),
        ("error_token_expired.json", 401, SendFailedTransient),  # our configuration: retried, then poisoned
    ],
)
def test_meta_error_codes_are_classified(meta: WhatsAppEmulator, fixture: str, status: int, expected: type) -> None:
    meta.inject("POST", "/messages$", status=status, body=json.loads(fixture_bytes("whatsapp", fixture)))
    with pytest.raises(expected) as raised:
        provider(meta).send(request())
    if isinstance(raised.value, SendFailedTransient):
        assert raised.value.retry_safe


def test_user_who_stopped_marketing_messages_is_opted_out(meta: WhatsAppEmulator) -> None:
    meta.reject(PHONE, 131050, "User has stopped marketing messages")
    with pytest.raises(SendRejected) as raised:
        provider(meta).send(request())
    assert raised.value.opted_out and raised.value.code == "131050"


def test_gateway_timeout_and_read_timeout_are_ambiguous(meta: WhatsAppEmulator) -> None:
    meta.inject("POST", "/messages$", status=504, body={"error": {"code": 2}})
    with pytest.raises(SendFailedTransient) as raised:
        provider(meta).send(request())
    assert not raised.value.retry_safe
    meta.inject("POST", "/messages$", status=0, delay=0.3)
    with pytest.raises(SendFailedTransient) as dropped:
        provider(meta, timeout=0.1).send(request())
    assert not dropped.value.retry_safe


def test_unknown_template_in_the_emulator_is_132001(meta: WhatsAppEmulator) -> None:
    with pytest.raises(SendRejected, match="template does not exist"):
        provider(meta).send(request(RichContent(template=TemplateMessage("nope", "en_GB", ()))))


# --- webhooks ----------------------------------------------------------------------------------------------------
def signed(body: bytes, secret: str = SECRET, **headers: str) -> InboundHttpRequest:
    all_headers = {"content-type": "application/json", "x-hub-signature-256": hub_signature(secret, body), **headers}
    return InboundHttpRequest("POST", "/api/callbacks/whatsapp", {}, all_headers, body)


def fixture(name: str) -> bytes:
    return fixture_bytes("whatsapp", name).replace(b"{ROW_ID}", ROW_ID.encode())


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("status_delivered.json", StatusKind.DELIVERED),
        ("status_read.json", StatusKind.OPENED),
        ("status_failed.json", StatusKind.FAILED),
    ],
)
def test_status_webhooks_map_to_interactions(meta: WhatsAppEmulator, name: str, kind: StatusKind) -> None:
    [event] = provider(meta).handle_callback(signed(fixture(name))).events
    assert isinstance(event, StatusEvent)
    assert event.kind is kind and event.activity_hint == ROW_ID and event.event_id
    if kind is StatusKind.FAILED:
        assert event.error_code == "131047" and event.detail == "Re-engagement message"


@pytest.mark.parametrize(
    ("name", "keyword", "opt_out"),
    [
        ("message_text.json", None, False),
        ("message_button.json", "book_yes", False),
        ("message_interactive_list_reply.json", "slot_8pm", False),
        ("message_interactive_button_reply.json", "unsubscribe", True),
    ],
)
def test_replies_and_button_payloads(meta: WhatsAppEmulator, name: str, keyword: str | None, opt_out: bool) -> None:
    [event] = provider(meta).handle_callback(signed(fixture(name))).events
    assert isinstance(event, InboundEvent)
    assert event.sender == PHONE and event.recipient == "+15550783881"
    assert (event.keyword, event.opt_out) == (keyword, opt_out)


def test_one_post_with_many_entries_yields_each_event_once(meta: WhatsAppEmulator) -> None:
    events = provider(meta).handle_callback(signed(fixture("batch_two_entries.json"))).events
    assert [e.event_id for e in events] == ["wamid.A1:sent", "wamid.A1:delivered", "wamid.B2"]  # other number skipped


@pytest.mark.parametrize(
    "headers",
    [{"x-hub-signature-256": "sha256=" + "0" * 64}, {"x-hub-signature-256": ""}, {"x-hub-signature-256": "md5=abc"}],
)
def test_forged_or_unsigned_webhooks_are_refused_before_parsing(
    meta: WhatsAppEmulator, headers: dict[str, str]
) -> None:
    with pytest.raises(CallbackRejected) as raised:
        provider(meta).handle_callback(signed(b"not even json", **headers))
    assert raised.value.status == 403
    with pytest.raises(CallbackRejected) as wrong_key:
        provider(meta).handle_callback(signed(fixture("status_delivered.json"), secret="another-app-secret"))
    assert wrong_key.value.status == 403


def test_signed_garbage_is_400(meta: WhatsAppEmulator) -> None:
    for body in (b"not json", b"[]", b'{"object": "page"}', b'{"object": "whatsapp_business_account", "entry": 1}'):
        with pytest.raises(CallbackRejected) as raised:
            provider(meta).handle_callback(signed(body))
        assert raised.value.status == 400


def handshake(token: str, mode: str = "subscribe", challenge: str = "1158201444") -> InboundHttpRequest:
    query = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}
    return InboundHttpRequest("GET", "/api/callbacks/whatsapp", query, {}, b"", urlencode(query))


def test_subscription_handshake(meta: WhatsAppEmulator) -> None:
    reply = provider(meta).handle_callback(handshake(VERIFY)).reply
    assert (reply.status, reply.body, reply.content_type) == (200, b"1158201444", "text/plain")
    for bad, status in (
        (handshake("wrong-token"), 403),
        (handshake(VERIFY, mode="unsubscribe"), 400),
        (handshake(VERIFY, challenge="<script>"), 400),
    ):
        with pytest.raises(CallbackRejected) as raised:
            provider(meta).handle_callback(bad)
        assert raised.value.status == status
    with pytest.raises(CallbackRejected) as unset:
        provider(meta, verify_token="").handle_callback(handshake(""))
    assert unset.value.status == 503


def test_documented_send_response_gives_the_wamid(meta: WhatsAppEmulator) -> None:
    body = json.loads(fixture_bytes("whatsapp", "send_template_response.json"))
    meta.inject("POST", "/messages$", status=200, body=body)
    result = provider(meta).send(request(RichContent(template=TEMPLATE)))
    assert result.provider_message_id == body["messages"][0]["id"] and result.status == "accepted"
