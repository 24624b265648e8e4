"""WhatsApp end to end through the real functions (issue #17): a journey message with an approved template reaches
the contact through Twilio and through the Cloud API emulator with its variables filled from the contact; delivery,
read and button replies come back as interactions; forged webhooks are refused; the same through the RTJ endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.twilio import TwilioEmulator
from devtools.emulators.whatsapp import WhatsAppEmulator
from devtools.host import LocalHost
from shared import bootstrap
from shared.adapters.shared_rate import ROW, partition_for
from shared.settings import load_settings
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE, activity_message
from tests.integration.conftest import PHONE, RTJ_SECRET, SENDER, Channel
from tests.integration.test_sending_policy import scheduled, state

CONTENT_SID = "HX" + "b" * 32
WA_SENDER = "whatsapp:+15005550006"
APP_SECRET = "integration-whatsapp-app-secret-0123"
VERIFY_TOKEN = "integration-verify-token-0123"
VARIABLES = '{"1": "{{contact.firstname}}", "2": "20%"}'
DEFINITION = "5a9e3c7d-1b2f-4e6a-8c0d-2f4b6d8e0a1c"


@dataclass
class WaChannel:
    provider: str
    channel: Channel  # the integration channel: host, Dataverse and Twilio emulators
    meta: WhatsAppEmulator

    @property
    def host(self) -> LocalHost:
        return self.channel.host

    @property
    def dataverse(self) -> DataverseEmulator:
        return self.channel.dataverse

    @property
    def twilio(self) -> TwilioEmulator:
        return self.channel.twilio

    @property
    def callback_base(self) -> str:
        return self.channel.callback_base

    def deliver(self) -> bool:
        return self.channel.deliver(activity_message())

    def response_types(self) -> list[str]:
        return self.channel.response_types()

    @property
    def webhook(self) -> str:
        return f"{self.callback_base}/api/callbacks/{self.provider}"


@pytest.fixture(params=["whatsapp", "twilio"])
def wa(request: pytest.FixtureRequest, channel: Channel, monkeypatch: pytest.MonkeyPatch) -> Iterator[WaChannel]:
    """The integration channel (emulators, Azurite, host) switched to WhatsApp: a template row, both providers."""
    provider = str(request.param)
    meta = WhatsAppEmulator(app_secret=APP_SECRET)
    meta.add_template("spring_offer", "Hi {{1}}, {{2}} off your next booking", "en_GB")
    channel.twilio.add_content(CONTENT_SID, "Hi {{1}}, {{2}} off your next booking")
    template = "spring_offer" if provider == "whatsapp" else CONTENT_SID
    channel.dataverse.add_columns(MESSAGE_TABLE, ["cr123_template", "cr123_language", "cr123_variables"])
    channel.dataverse.add_row(
        MESSAGE_TABLE,
        MESSAGE_ID,
        {
            "cr123_name": "Spring",
            "cr123_body": "",
            "cr123_template": template,
            "cr123_language": "en_GB",
            "cr123_variables": VARIABLES,
        },
    )
    env = {
        **channel.env,
        "CHANNEL_PROVIDER": provider,
        "MESSAGE_TEMPLATE_COLUMN": "cr123_template",
        "MESSAGE_TEMPLATE_LANGUAGE_COLUMN": "cr123_language",
        "MESSAGE_TEMPLATE_VARIABLES_COLUMN": "cr123_variables",
        "WHATSAPP_PHONE_NUMBER_ID": meta.phone_number_id,
        "WHATSAPP_ACCESS_TOKEN": meta.access_token,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_API_BASE_URL": meta.api_base_url,
        "TWILIO_FROM": WA_SENDER,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    channel.host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=channel.host.queue))
    try:
        yield WaChannel(provider, channel, meta)
    finally:
        meta.stop()  # the channel fixture stops the rest and uninstalls the service


def delivered_text(wa: WaChannel) -> list[str]:
    if wa.provider == "whatsapp":
        return [m.text for m in wa.meta.messages]
    return [str(m.body) for m in wa.twilio.messages]


def status(wa: WaChannel, state: str) -> int:
    if wa.provider == "whatsapp":
        return wa.meta.post_webhook(wa.webhook, wa.meta.status_payload(wa.meta.messages[0], state))[0]
    return wa.twilio.send_status(wa.twilio.messages[0].sid, state)[0]


def button(wa: WaChannel, payload: str, text: str) -> int:
    if wa.provider == "whatsapp":
        return wa.meta.post_webhook(wa.webhook, wa.meta.button_payload(PHONE, payload, text))[0]
    return wa.twilio.send_button_reply(wa.webhook, "whatsapp:" + PHONE, WA_SENDER, payload, text)[0]


def test_template_reaches_the_contact_and_delivery_read_and_button_come_back(wa: WaChannel) -> None:
    assert wa.deliver()
    assert delivered_text(wa) == ["Hi Avery, 20% off your next booking"]
    if wa.provider == "twilio":
        params = wa.twilio.messages[0].params
        assert params["ContentSid"] == [CONTENT_SID] and "Body" not in params
        assert json.loads(params["ContentVariables"][0]) == {"1": "Avery", "2": "20%"}
        assert wa.twilio.messages[0].from_ == WA_SENDER
    assert status(wa, "delivered") == 200
    assert status(wa, "read") == 200
    assert button(wa, "BOOK_YES", "Yes, book me in") == 200
    assert wa.response_types() == ["sent", "delivered", "opened", "keyword:book_yes"]


def test_opt_out_button_sets_the_compliance_column(wa: WaChannel) -> None:
    assert wa.deliver()
    assert button(wa, "Unsubscribe", "No more offers") == 200  # a payload listed in WHATSAPP_OPT_OUT_PAYLOADS
    assert wa.response_types() == ["sent", "keyword:stop"]
    assert wa.dataverse.get_row("contact", CONTACT_ID)["donotphone"] is True  # type: ignore[index]


def test_empty_variable_fails_and_sends_nothing(wa: WaChannel) -> None:
    wa.dataverse.add_row("contact", CONTACT_ID, {"firstname": None, "mobilephone": PHONE, "donotphone": False})
    assert wa.deliver()
    assert delivered_text(wa) == []
    assert wa.response_types() == ["failed"]


def test_forged_webhook_is_refused(wa: WaChannel) -> None:
    assert wa.deliver()
    if wa.provider == "whatsapp":
        payload = wa.meta.status_payload(wa.meta.messages[0], "delivered")
        assert wa.meta.post_webhook(wa.webhook, payload, secret="forged-secret")[0] == 403
        assert wa.meta.post_webhook(wa.webhook, payload, sign=False)[0] == 403
    else:
        assert wa.twilio.send_status(wa.twilio.messages[0].sid, "delivered", signature="forged")[0] == 403
    assert wa.response_types() == ["sent"]


def test_get_handshake_only_for_whatsapp(wa: WaChannel) -> None:
    if wa.provider == "whatsapp":
        assert wa.meta.verify_subscription(wa.webhook, VERIFY_TOKEN, "4242") == (200, b"4242")
        assert wa.meta.verify_subscription(wa.webhook, "not-the-token")[0] == 403
        return
    query = urlencode({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"})
    response = wa.host.call_http("GET", f"{wa.webhook}?{query}", headers={}, body=b"")
    assert response.status_code == 405  # other providers' callbacks stay POST only


def rtj_send(wa: WaChannel, request_id: str, message: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST one real-time journeys message from the journey's sender ``WA_SENDER``: (status, JSON answer)."""
    body = {"ChannelDefinitionId": DEFINITION, "RequestId": request_id, "From": WA_SENDER, "To": PHONE}
    headers = {"Content-Type": "application/json", "X-Channel-Secret": RTJ_SECRET}
    response = wa.host.call_http(
        "POST",
        f"{wa.callback_base}/api/rtj/outbound",
        headers=headers,
        body=json.dumps({**body, "Message": message}).encode(),
    )
    return response.status_code, json.loads(response.get_body())


def test_rtj_template_parts_are_sent_through_the_configured_provider(wa: WaChannel) -> None:
    template = "spring_offer" if wa.provider == "whatsapp" else CONTENT_SID
    message = {"templatename": template, "templatelanguage": "en_GB", "templatevariables": '{"1": "Sam", "2": "15%"}'}
    code, answer = rtj_send(wa, "req-wa-1", message)
    assert code == 200 and answer["Status"] == "Sent", answer
    assert delivered_text(wa) == ["Hi Sam, 15% off your next booking"]
    code, answer = rtj_send(wa, "req-wa-2", {"templatename": template, "templatevariables": '{"1": ""}'})
    assert answer["Status"] == "NotSent" and answer["Details"]["Reason"] == "InvalidMessage"
    assert len(delivered_text(wa)) == 1


def test_the_row_is_read_once_with_its_template_columns(wa: WaChannel) -> None:
    assert wa.deliver()
    reads = [r for r in wa.dataverse.requests if r.path.startswith("/api/data/v9.2/cr123_smsmessages(")]
    assert len(reads) == 1
    assert "cr123_template" in reads[0].target and "cr123_variables" in reads[0].target
    assert wa.response_types() == ["sent"]


TEMPLATE_PARTS = {
    "templatename": "spring_offer",
    "templatelanguage": "en_GB",
    "templatevariables": '{"1": "Sam", "2": "5%"}',
}


def reconfigure(wa: WaChannel, **settings: str) -> None:
    env = {**wa.host.environ, **settings}
    wa.host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=wa.host.queue))


def test_a_template_send_is_not_failed_on_the_segments_of_its_body(wa: WaChannel) -> None:
    """The body column is not what a template send delivers: SMS_MAX_SEGMENTS does not apply to it (review A)."""
    row = wa.dataverse.get_row(MESSAGE_TABLE, MESSAGE_ID) or {}
    wa.dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {**row, "cr123_body": "€" * 81})  # two GSM-7 parts
    reconfigure(wa, SMS_MAX_SEGMENTS="1", TWILIO_FROM=SENDER)  # a plain SMS number: not a whatsapp: sender
    assert wa.deliver()
    assert delivered_text(wa) == ["Hi Avery, 20% off your next booking"]
    assert wa.response_types() == ["sent"]


@pytest.mark.parametrize("wa", ["whatsapp"], indirect=True)
def test_cloud_api_texts_are_not_counted_as_sms_segments(wa: WaChannel) -> None:
    """CHANNEL_PROVIDER=whatsapp is WhatsApp whatever TWILIO_FROM says (review A)."""
    long_text = "€" * 81  # two GSM-7 parts as an SMS
    wa.dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Long", "cr123_body": long_text})
    reconfigure(wa, SMS_MAX_SEGMENTS="1", TWILIO_FROM=SENDER)
    assert wa.deliver()
    assert delivered_text(wa) == [long_text]
    assert wa.response_types() == ["sent"]


@pytest.mark.parametrize("wa", ["whatsapp"], indirect=True)
def test_the_cloud_api_shares_one_send_rate_keyed_on_the_phone_number_id(wa: WaChannel) -> None:
    """Outbound and real-time journeys sends leave from WHATSAPP_PHONE_NUMBER_ID: one budget, whatever From says."""
    reconfigure(wa, PROVIDER_MAX_PER_SECOND="5")
    table = state(wa.channel)
    number = partition_for("whatsapp", wa.meta.phone_number_id)
    assert wa.deliver()
    code, answer = rtj_send(wa, "req-rate-1", TEMPLATE_PARTS)
    assert code == 200 and answer["Status"] == "Sent", answer
    assert len(wa.meta.messages) == 2
    found = table.get(number, ROW)
    assert found is not None and found[0]["next_at"] > time.time() - 5
    assert table.get(partition_for("whatsapp", WA_SENDER), ROW) is None  # the journey's From is not a budget
    assert table.get(partition_for("whatsapp", None), ROW) is None

    table.upsert(number, ROW, {"next_at": time.time() + 120})  # other instances took the next two minutes
    reconfigure(wa, PROVIDER_MAX_PER_SECOND="5")
    code, _ = rtj_send(wa, "req-rate-2", TEMPLATE_PARTS)
    assert code == 503  # nothing sent: the journey retries
    assert wa.channel.deliver(activity_message(row_id="e0f2c1aa-0000-4000-8000-00000000000b"))
    assert len(wa.meta.messages) == 2
    [copy] = scheduled(wa.channel)  # the outbound activity is deferred on the same budget
    assert copy.scheduled_at > datetime.now(UTC) + timedelta(seconds=100)
