"""The whole loop through the real functions: activity message → Twilio → interactions → callbacks."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from devtools.emulators.twilio import twilio_signature
from tests.helpers import (
    ACTIVITY_ID,
    ACTIVITY_ROW,
    ACTIVITY_TABLE,
    CONTACT_ID,
    ITERATION_ID,
    JOURNEY_ID,
    MESSAGE_ID,
    MESSAGE_TABLE,
    ROW_ID,
    activity_message,
    fixture_bytes,
)
from tests.integration.conftest import PHONE, SENDER, Channel

EXPECTED_SENT = {
    "ActivityId": ACTIVITY_ID,
    "CustomerJourney": {
        "@odata.type": "Microsoft.Dynamics.CRM.msdyncrm_customerjourney",
        "msdyncrm_customerjourneyid": JOURNEY_ID,
    },
    "CustomerJourneyIteration": {
        "@odata.type": "Microsoft.Dynamics.CRM.msdyncrm_customerjourneyiteration",
        "msdyncrm_customerjourneyiterationid": ITERATION_ID,
    },
    "Contact": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": CONTACT_ID},
    "EntityType": MESSAGE_TABLE,
    "EntityId": MESSAGE_ID,
    "ResponseType": "sent",
}


def test_activity_message_sends_one_sms_and_records_sent(channel: Channel) -> None:
    assert channel.deliver(fixture_bytes("dataverse", "activity_create.json"))
    assert len(channel.twilio.messages) == 1
    sms = channel.twilio.messages[0]
    assert sms.to == PHONE
    assert sms.from_ == SENDER
    assert sms.body == "Hi Avery, your code is "
    assert sms.status_callback == f"{channel.callback_base}/api/callbacks/twilio?activity={ROW_ID}"
    assert channel.interactions == [EXPECTED_SENT]


def test_dataverse_requests_carry_the_documented_headers(channel: Channel) -> None:
    channel.deliver(activity_message())
    action = [
        r for r in channel.dataverse.requests if r.path.endswith("msdyncrm_CustomChannelActivityCreateInteraction")
    ]
    assert len(action) == 1
    headers = {k.lower(): v for k, v in action[0].headers.items()}
    assert headers["odata-version"] == "4.0" and headers["odata-maxversion"] == "4.0"
    assert headers["accept"] == "application/json"
    assert headers["content-type"].startswith("application/json")
    assert action[0].method == "POST"


def test_metadata_and_message_rows_are_cached_across_contacts(channel: Channel) -> None:
    others = ["0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d", "9b0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4"]
    for index, contact in enumerate(others):
        channel.dataverse.add_row("contact", contact, {"firstname": f"C{index}", "mobilephone": f"+4477009001{index}0"})
    for index, contact in enumerate(others):
        row = f"00000000-0000-4000-8000-00000000000{index}"
        assert channel.deliver(activity_message(row_id=row, contact_id=contact, activity_id=row))
    message_reads = [r for r in channel.dataverse.requests if r.path.startswith("/api/data/v9.2/cr123_smsmessages(")]
    assert len(message_reads) == 1
    assert channel.dataverse.entity_definition_requests == 2  # message table + contact, once each
    assert len(channel.twilio.messages) == 2


def test_redelivery_sends_nothing_twice(channel: Channel) -> None:
    for _ in range(3):
        assert channel.deliver(activity_message())
    assert len(channel.twilio.messages) == 1
    assert channel.response_types() == ["sent"]


def test_signed_status_callbacks_record_delivered_once(channel: Channel) -> None:
    channel.deliver(activity_message())
    sid = channel.twilio.messages[0].sid
    for status in ("sent", "delivered", "delivered", "sent"):
        code, body = channel.twilio.send_status(sid, status)
        assert code == 200 and "<Response/>" in body
    assert channel.response_types() == ["sent", "delivered"]
    assert channel.interactions[1] == {**EXPECTED_SENT, "ResponseType": "delivered"}


def test_undelivered_records_failed(channel: Channel) -> None:
    channel.deliver(activity_message())
    channel.twilio.send_status(channel.twilio.messages[0].sid, "undelivered", error_code=30003)
    assert channel.response_types() == ["sent", "failed"]


def test_forged_and_unsigned_callbacks_are_refused_and_record_nothing(channel: Channel) -> None:
    channel.deliver(activity_message())
    sid = channel.twilio.messages[0].sid
    assert channel.twilio.send_status(sid, "delivered", signature="RSOYDt4T1cUTdK1PDd93/VVr8B8=")[0] == 403
    assert channel.twilio.send_status(sid, "delivered", sign=False)[0] == 403
    assert channel.response_types() == ["sent"]


def test_reply_records_keyword_and_stop_opts_out(channel: Channel) -> None:
    channel.deliver(activity_message())
    inbound = f"{channel.callback_base}/api/callbacks/twilio"
    code, body = channel.twilio.send_inbound(inbound, PHONE, SENDER, "Interested!")
    assert code == 200 and body.endswith("<Response/>")
    code, _ = channel.twilio.send_inbound(inbound, PHONE, SENDER, "STOP")
    assert code == 200
    assert channel.response_types() == ["sent", "keyword:interested", "keyword:stop"]
    assert channel.interactions[1]["TriggerKeyword"] == "interested"
    assert channel.dataverse.get_row("contact", CONTACT_ID)["donotphone"] is True  # type: ignore[index]


def test_callback_is_queued_when_dataverse_is_down_and_not_lost(channel: Channel) -> None:
    channel.deliver(activity_message())
    channel.dataverse.inject_error(
        "POST", "CreateInteraction", status=503, code="0x80040216", message="Service unavailable", times=3
    )
    code, _ = channel.twilio.send_status(channel.twilio.messages[0].sid, "delivered")
    assert code == 200
    assert channel.response_types() == ["sent"]
    assert len(channel.host.queue.on("callbacks")) == 1
    assert channel.host.pump() == 1
    assert channel.response_types() == ["sent", "delivered"]


def test_429_retry_after_is_honoured(channel: Channel) -> None:
    channel.dataverse.inject_error(
        "POST",
        "CreateInteraction",
        status=429,
        code="0x80072322",
        message="Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
        headers={"Retry-After": "1"},
        times=1,
    )
    assert channel.deliver(activity_message())
    assert channel.response_types() == ["sent"]
    calls = [r for r in channel.dataverse.requests if r.path.endswith("CreateInteraction")]
    assert len(calls) == 2  # the throttled call, then the same call after Retry-After
    assert calls[1].received_at - calls[0].received_at >= 1.0
    assert channel.host.queue.messages == []  # absorbed inline, nothing rescheduled


def test_dataverse_error_code_is_surfaced_and_message_rescheduled(channel: Channel) -> None:
    channel.dataverse.inject_error(
        "POST",
        "CreateInteraction",
        status=403,
        code="0x80040220",
        message="Principal user is missing prvCreate",
        times=1,
    )
    assert channel.deliver(activity_message())
    retry = channel.host.queue.on("activities")
    assert len(retry) == 1 and retry[0].scheduled_at is not None
    assert channel.response_types() == []
    channel.host.pump()  # the retry: no second SMS, the due interaction is recorded
    assert len(channel.twilio.messages) == 1
    assert channel.response_types() == ["sent"]


def test_bad_input_is_poisoned_once_and_never_reaches_provider_or_action(channel: Channel) -> None:
    cases = [
        (b"not json", "application/json", "invalid_json"),
        (fixture_bytes("dataverse", "activity_create.xml"), "application/xml", "xml_format"),
        (fixture_bytes("dataverse", "activity_create.msbin1"), "application/msbin1", "binary_format"),
        (fixture_bytes("dataverse", "activity_update.json"), "application/json", "unexpected_message"),
        (fixture_bytes("dataverse", "contact_create.json"), "application/json", "unexpected_entity"),
        (fixture_bytes("dataverse", "activity_missing_contact.json"), "application/json", "missing_attribute"),
        (fixture_bytes("dataverse", "activity_bad_entityid.json"), "application/json", "invalid_id"),
    ]
    for body, content_type, _ in cases:
        assert channel.deliver(body, content_type=content_type)
    poison = channel.host.queue.on("activities-poison")
    assert [m.application_properties["DeadLetterReason"] for m in poison] == [c[2] for c in cases]
    assert channel.host.invocations == len(cases)  # one attempt each
    assert channel.twilio.messages == [] and channel.interactions == []
    # the queue keeps flowing: a good message right after is processed
    assert channel.deliver(activity_message())
    assert channel.response_types() == ["sent"]


def test_provider_rejection_records_failed_and_opt_out_sets_compliance(channel: Channel) -> None:
    channel.twilio.reject(PHONE, 21610, "Attempt to send to unsubscribed recipient")
    assert channel.deliver(activity_message())
    assert channel.response_types() == ["failed"]
    assert channel.dataverse.get_row("contact", CONTACT_ID)["donotphone"] is True  # type: ignore[index]


def test_twilio_outage_reschedules_without_double_send(channel: Channel) -> None:
    channel.twilio.inject("POST", "Messages.json", status=503, body={"code": 20500, "message": "Internal"}, times=1)
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == []
    channel.host.pump()
    assert len(channel.twilio.messages) == 1
    assert channel.response_types() == ["sent"]


def test_trimmed_message_reads_activity_row_through_web_api(channel: Channel) -> None:
    channel.dataverse.add_row(ACTIVITY_TABLE, ROW_ID, ACTIVITY_ROW)
    assert channel.deliver(fixture_bytes("dataverse", "activity_create_trimmed.json"))
    assert channel.interactions == [EXPECTED_SENT]


def test_compliance_true_sends_nothing(channel: Channel) -> None:
    channel.dataverse.add_row("contact", CONTACT_ID, {"firstname": "Avery", "mobilephone": PHONE, "donotphone": True})
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == [] and channel.interactions == []


def test_unknown_provider_route_and_malformed_body(channel: Channel) -> None:
    response = channel.host.call_http("POST", f"{channel.callback_base}/api/callbacks/pigeon", body=b"x=1")
    assert response.status_code == 404
    assert json.loads(response.get_body())["error"].startswith("unknown provider")
    url = f"{channel.callback_base}/api/callbacks/twilio"
    params = [("AccountSid", channel.twilio.account_sid), ("MessageStatus", "delivered")]  # no MessageSid
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(channel.twilio.auth_token, url, params),
    }
    response = channel.host.call_http("POST", url, headers=headers, body=urlencode(params).encode())
    assert response.status_code == 400
    assert json.loads(response.get_body()) == {"error": "callback has no MessageSid"}


def test_unknown_message_id_is_200_and_logged(channel: Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="channel")
    url = f"{channel.callback_base}/api/callbacks/twilio"
    params = [
        ("AccountSid", channel.twilio.account_sid),
        ("MessageSid", "SM" + "0" * 32),
        ("MessageStatus", "delivered"),
    ]
    headers = {
        "X-Twilio-Signature": twilio_signature(channel.twilio.auth_token, url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = channel.host.call_http("POST", url, headers=headers, body=urlencode(params).encode())
    assert response.status_code == 200
    assert "callback.unknown_message" in caplog.text
    assert channel.interactions == []
