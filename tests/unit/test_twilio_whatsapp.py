"""Twilio WhatsApp (issue #17): 63016 outside the session window, quick-reply buttons, templates at send time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests

from devtools.emulators.twilio import TwilioEmulator, twilio_signature
from shared.domain.errors import SendRejected
from shared.domain.models import InboundEvent, InboundHttpRequest, SendRequest, StatusEvent, StatusKind
from shared.domain.whatsapp import RichContent, TemplateMessage
from shared.providers.twilio import TwilioProvider
from tests.helpers import ROW_ID, twilio_params

SID = "AC" + "4" * 32
TOKEN = "twilio-whatsapp-unit-token"
CALLBACK = "https://app.example/api/callbacks/twilio"
SENDER = "whatsapp:+15005550006"
CONTENT_SID = "HX" + "c" * 32


@pytest.fixture
def twilio() -> Iterator[TwilioEmulator]:
    emulator = TwilioEmulator(SID, TOKEN)
    emulator.add_content(CONTENT_SID, "Hi {{1}}, {{2}} off")
    try:
        yield emulator
    finally:
        emulator.stop()


def provider(api: str = "http://127.0.0.1:9") -> TwilioProvider:
    return TwilioProvider(
        account_sid=SID,
        auth_token=TOKEN,
        sender=SENDER,
        messaging_service_sid=None,
        api_base_url=api,
        callback_url=CALLBACK,
        session=requests.Session(),
        timeout=2.0,
        opt_out_payloads=frozenset({"stop", "opt_out"}),
    )


def signed(params: dict[str, str], query: str = "") -> InboundHttpRequest:
    url = CALLBACK + (f"?{query}" if query else "")
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio_signature(TOKEN, url, list(params.items())),
    }
    query_dict = dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair)
    return InboundHttpRequest("POST", "/api/callbacks/twilio", query_dict, headers, urlencode(params).encode(), query)


def test_63016_status_is_failed_with_the_reason() -> None:
    params = twilio_params(
        "status_failed_63016", MessageSid="SM" + "1" * 32, AccountSid=SID, To="+447700900123", From="+15005550006"
    )
    [event] = provider().handle_callback(signed(params, f"activity={ROW_ID}")).events
    assert isinstance(event, StatusEvent)
    assert event.kind is StatusKind.FAILED and event.error_code == "63016"
    assert event.detail is not None and "24-hour session window" in event.detail


@pytest.mark.parametrize(
    ("payload", "keyword", "opt_out"), [("BOOK_YES", "book_yes", False), ("Opt_Out", "opt_out", True)]
)
def test_button_reply_carries_the_payload_as_keyword(payload: str, keyword: str, opt_out: bool) -> None:
    params = twilio_params("inbound_button_whatsapp", AccountSid=SID, MessageSid="SM" + "2" * 32)
    params["ButtonPayload"] = payload
    [event] = provider().handle_callback(signed(params)).events
    assert isinstance(event, InboundEvent)
    assert event.text == "Yes, book me in" and event.sender == "whatsapp:+447700900123"
    assert (event.keyword, event.opt_out) == (keyword, opt_out)


def test_typed_replies_have_no_button_keyword() -> None:
    params = twilio_params("inbound_button_whatsapp", AccountSid=SID, MessageSid="SM" + "3" * 32)
    del params["ButtonPayload"], params["ButtonText"]
    [event] = provider().handle_callback(signed(params)).events
    assert isinstance(event, InboundEvent) and event.keyword is None and not event.opt_out


def request(content: RichContent | None) -> SendRequest:
    return SendRequest("+447700900123", "Hello", ROW_ID, f"{CALLBACK}?activity={ROW_ID}", ROW_ID, content=content)


def test_template_reaches_the_handset_filled(twilio: TwilioEmulator) -> None:
    template = TemplateMessage(CONTENT_SID, None, (("1", "Avery"), ("2", "20%")))
    provider(twilio.url).send(request(RichContent(template=template)))
    [message] = twilio.messages
    assert message.body == "Hi Avery, 20% off" and message.to == "whatsapp:+447700900123"
    assert json.loads(message.params["ContentVariables"][0]) == {"1": "Avery", "2": "20%"}


def test_media_goes_with_the_body(twilio: TwilioEmulator) -> None:
    provider(twilio.url).send(request(RichContent(media_url="https://cdn.example/a.jpg")))
    assert twilio.messages[0].media_urls == ["https://cdn.example/a.jpg"]


def test_63016_at_send_time_is_a_permanent_rejection(twilio: TwilioEmulator) -> None:
    twilio.reject(
        "whatsapp:+447700900123", 63016, "Failed to send freeform message because you are outside the allowed window."
    )
    with pytest.raises(SendRejected) as raised:
        provider(twilio.url).send(request(None))
    assert raised.value.code == "63016" and "session window" in raised.value.detail


def test_a_template_with_a_missing_variable_is_refused_by_the_emulator(twilio: TwilioEmulator) -> None:
    from shared.domain.errors import SendFailedTransient

    template = TemplateMessage(CONTENT_SID, None, (("1", "Avery"),))
    with pytest.raises(SendFailedTransient, match="21656"):  # a 400 that is not about the contact: configuration
        provider(twilio.url).send(request(RichContent(template=template)))
