"""Real-time journeys: the relayed outbound payload, delivery notifications and inbound, on the same app."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import activity_message
from tests.integration.conftest import PHONE, RTJ_SECRET, Channel

DEFINITION = "0f6e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c"
RTJ_SENDER = "+15005550009"
OUTBOUND = "/api/rtj/outbound"


def payload(request_id: str = "req-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ChannelDefinitionId": DEFINITION,
        "RequestId": request_id,
        "IdempotencyId": None,
        "From": RTJ_SENDER,
        "To": PHONE,
        "Message": {"text": "Your table for two is booked for 8pm."},
        "MarketingAppContext": {
            "CustomerJourneyId": "2b7c9e10-4d3f-4a8b-9c1d-0e2f3a4b5c6d",
            "UserId": "8d3c1f2e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            "UserEntityType": "contact",
            "IsTestSend": False,
        },
    }
    body.update(overrides)
    return body


def post(channel: Channel, body: Any, secret: str | None = RTJ_SECRET) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Channel-Secret"] = secret
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = channel.host.call_http("POST", channel.callback_base + OUTBOUND, headers=headers, body=raw)
    return response.status_code, json.loads(response.get_body() or b"{}")


def test_relayed_payload_sends_once_and_answers_sent(channel: Channel) -> None:
    status, answer = post(channel, payload())
    assert status == 200
    assert len(channel.twilio.messages) == 1
    sms = channel.twilio.messages[0]
    assert (sms.to, sms.from_, sms.body) == (PHONE, RTJ_SENDER, "Your table for two is booked for 8pm.")
    assert answer == {"ChannelDefinitionId": DEFINITION, "RequestId": "req-1", "Status": "Sent", "MessageId": sms.sid}
    assert channel.interactions == []  # the outbound-marketing action is not involved


def test_rerun_after_timeout_returns_the_same_answer_without_sending_again(channel: Channel) -> None:
    first = post(channel, payload())
    second = post(channel, payload())
    assert first == second
    assert len(channel.twilio.messages) == 1


def test_idempotency_id_wins_over_a_new_request_id(channel: Channel) -> None:
    _, first = post(channel, payload("req-1", IdempotencyId="idem-42"))
    _, second = post(channel, payload("req-2", IdempotencyId="idem-42"))
    assert len(channel.twilio.messages) == 1
    assert second["RequestId"] == "req-2" and second["MessageId"] == first["MessageId"]


def test_test_send_works(channel: Channel) -> None:
    context = {"CustomerJourneyId": None, "UserId": None, "UserEntityType": None, "IsTestSend": True}
    status, answer = post(channel, payload(MarketingAppContext=context))
    assert status == 200 and answer["Status"] == "Sent"
    assert len(channel.twilio.messages) == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"To": "not a number"}, "InvalidRecipient"),
        ({"Message": {"text": "   "}}, "InvalidMessage"),
        ({"Message": {}}, "InvalidPayload"),
        ({"To": None}, "InvalidPayload"),
    ],
)
def test_unusable_payload_answers_not_sent_with_details(
    channel: Channel, overrides: dict[str, Any], reason: str
) -> None:
    status, answer = post(channel, payload(**overrides))
    assert status == 200
    assert answer["Status"] == "NotSent" and answer["Details"]["Reason"] == reason
    assert answer["RequestId"] == "req-1" and answer["ChannelDefinitionId"] == DEFINITION
    assert channel.twilio.messages == []


def test_provider_rejection_is_not_sent_with_the_provider_code(channel: Channel) -> None:
    channel.twilio.reject(PHONE, 21211, "The 'To' number is not a valid phone number.")
    status, answer = post(channel, payload())
    assert status == 200
    assert answer["Status"] == "NotSent" and answer["Details"]["Reason"] == "21211"


def test_provider_outage_fails_the_attempt_so_journeys_retries_and_sends_once(channel: Channel) -> None:
    channel.twilio.inject("POST", "Messages.json", status=503, body={"code": 20500, "message": "x"}, times=1)
    status, _ = post(channel, payload())
    assert status == 503
    status, answer = post(channel, payload())
    assert status == 200 and answer["Status"] == "Sent"
    assert len(channel.twilio.messages) == 1


@pytest.mark.parametrize(("secret", "expected"), [(None, 401), ("wrong-secret-wrong-secret-wrong", 403)])
def test_unauthenticated_relay_is_refused(channel: Channel, secret: str | None, expected: int) -> None:
    status, _ = post(channel, payload(), secret=secret)
    assert status == expected
    assert channel.twilio.messages == []


@pytest.mark.parametrize("body", [b"not json", b"[]", json.dumps({"RequestId": "r"}).encode()])
def test_unanswerable_payload_is_400(channel: Channel, body: bytes) -> None:
    status, answer = post(channel, body)
    assert status == 400 and "error" in answer


def test_delivery_report_calls_channels_notification_once(channel: Channel) -> None:
    _, answer = post(channel, payload())
    sid = answer["MessageId"]
    for status in ("sent", "delivered", "delivered", "undelivered"):
        assert channel.twilio.send_status(sid, status)[0] == 200
    assert channel.dataverse.notifications == [
        {
            "ChannelDefinitionId": DEFINITION,
            "RequestId": "req-1",
            "MessageId": sid,
            "From": RTJ_SENDER,
            "OrganizationId": channel.dataverse.organization_id,
            "Status": "Delivered",
        }
    ]
    assert channel.interactions == []
    whoami = [r for r in channel.dataverse.requests if r.path.rstrip("()").endswith("WhoAmI")]
    assert len(whoami) == 1  # cached


def test_failed_delivery_is_not_delivered_with_details(channel: Channel) -> None:
    _, answer = post(channel, payload())
    channel.twilio.send_status(answer["MessageId"], "undelivered", error_code=30003)
    (notification,) = channel.dataverse.notifications
    assert notification["Status"] == "NotDelivered"
    assert notification["Details"]["Reason"] == "30003"


def test_notification_survives_a_dataverse_outage(channel: Channel) -> None:
    _, answer = post(channel, payload())
    channel.dataverse.inject_error(
        "POST", "D365ChannelsNotification", status=503, code="0x80040216", message="x", times=3
    )
    assert channel.twilio.send_status(answer["MessageId"], "delivered")[0] == 200
    assert channel.dataverse.notifications == []
    channel.host.pump()
    assert [n["Status"] for n in channel.dataverse.notifications] == ["Delivered"]


def test_inbound_reply_to_an_rtj_sender_calls_channels_inbound_once(channel: Channel) -> None:
    post(channel, payload())
    url = channel.callback_base + "/api/callbacks/twilio"
    code, _ = channel.twilio.send_inbound(url, PHONE, RTJ_SENDER, "Can we make it 9pm?")
    assert code == 200
    assert channel.dataverse.inbound == [
        {
            "ChannelDefinitionId": DEFINITION,
            "To": RTJ_SENDER,
            "From": PHONE,
            "OrganizationId": channel.dataverse.organization_id,
            "Message": {"text": "Can we make it 9pm?"},
        }
    ]
    assert channel.interactions == []


def test_both_contracts_from_one_app(channel: Channel) -> None:
    """An outbound-marketing activity and a real-time journeys send, each reported on its own contract."""
    assert channel.deliver(activity_message())
    _, answer = post(channel, payload())
    om_sid = next(m.sid for m in channel.twilio.messages if m.from_ != RTJ_SENDER)
    channel.twilio.send_status(om_sid, "delivered")
    channel.twilio.send_status(answer["MessageId"], "delivered")
    assert channel.response_types() == ["sent", "delivered"]
    assert [n["Status"] for n in channel.dataverse.notifications] == ["Delivered"]
