"""Security properties of the callback route, through the function app (HTTP trigger) with an in-memory service."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from devtools.emulators.twilio import twilio_signature
from devtools.host import LocalHost
from shared import bootstrap
from shared.domain.state import SendStatus
from shared.ports import QueueMessage
from shared.providers.twilio import MAX_CALLBACK_BYTES
from shared.service import ChannelService
from tests.fakes import FakeDataverse
from tests.fuzz.conftest import BASE, TWILIO_SID, TWILIO_TOKEN, build_service
from tests.helpers import CONTACT_ID, activity_message

URL = f"{BASE}/twilio"
OTHER_ROW = "0e3b8a8c-2f1d-4b6a-9c3e-7d5f1a2b3c4d"
PHONE = "+447700900123"


class Sender:
    """Stands in for the Twilio send API: gives each send a message id (the service under test is real)."""

    def __init__(self, service: ChannelService) -> None:
        self.count = 0
        provider = service.deps.provider

        def send(request: object) -> object:
            from shared.domain.models import SendResult

            self.count += 1
            return SendResult(f"SM{self.count:032d}", "queued")

        provider.send = send  # type: ignore[method-assign]


@pytest.fixture
def app() -> tuple[LocalHost, ChannelService]:
    service = build_service()
    Sender(service)
    bootstrap.install(service)
    yield LocalHost(), service
    bootstrap.install(None)


def _send(service: ChannelService, row: str, contact: str = CONTACT_ID) -> None:
    body = activity_message(row_id=row, contact_id=contact, activity_id=row)
    assert service.handle_activity_message(QueueMessage("activities", body, row, "application/json")).result == "sent"


def _status(
    host: LocalHost, row: str, sid: str, status: str, *, token: str = TWILIO_TOKEN, query: str | None = None
) -> int:
    signed_url = f"{URL}?activity={row}"
    params = [("MessageSid", sid), ("MessageStatus", status), ("AccountSid", TWILIO_SID)]
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, signed_url, params),
    }
    target = f"{URL}?{query}" if query is not None else signed_url
    return host.call_http("POST", target, headers=headers, body=urlencode(params).encode()).status_code


def _types(service: ChannelService) -> list[str]:
    dataverse = service.deps.dataverse
    assert isinstance(dataverse, FakeDataverse)
    return dataverse.response_types()


def test_forged_signatures_are_refused_and_record_nothing(app: tuple[LocalHost, ChannelService]) -> None:
    host, service = app
    row = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"
    _send(service, row)
    sid = "SM" + "1".zfill(32)
    assert _status(host, row, sid, "delivered", token="wrong-token") == 403
    params = [("MessageSid", sid), ("MessageStatus", "delivered"), ("AccountSid", TWILIO_SID)]
    signature = twilio_signature(TWILIO_TOKEN, f"{URL}?activity={row}", params)
    tampered = [("MessageSid", sid), ("MessageStatus", "undelivered"), ("AccountSid", TWILIO_SID)]
    for headers, body in [
        ({"Content-Type": "application/x-www-form-urlencoded"}, urlencode(params)),  # unsigned
        ({"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}, urlencode(tampered)),
        ({"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "é" * 28}, urlencode(params)),
    ]:
        response = host.call_http("POST", f"{URL}?activity={row}", headers=headers, body=body.encode())
        assert response.status_code == 403
    assert _types(service) == ["sent"]


def test_replayed_callbacks_change_nothing(app: tuple[LocalHost, ChannelService]) -> None:
    host, service = app
    row = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"
    _send(service, row)
    sid = "SM" + "1".zfill(32)
    for _ in range(5):
        assert _status(host, row, sid, "delivered") == 200
    assert _status(host, row, sid, "undelivered") == 200  # a replayed older/later report cannot go backwards
    assert _types(service) == ["sent", "delivered"]


def test_signed_report_cannot_be_moved_to_another_activity_or_journey(app: tuple[LocalHost, ChannelService]) -> None:
    host, service = app
    row = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"
    _send(service, row)
    _send(service, OTHER_ROW)  # another activity (another journey's contact in real life)
    mine, other = "SM" + "1".zfill(32), "SM" + "2".zfill(32)
    # a genuine report for row 1, replayed with the query rewritten to the other activity: signature fails
    assert _status(host, row, mine, "undelivered", query=f"activity={OTHER_ROW}") == 403
    # a genuinely signed report whose message belongs to row 1 but names the other activity: ignored (mismatch)
    assert _status(host, OTHER_ROW, mine, "undelivered") == 200
    state = service.deps.records.activities.get(OTHER_ROW)
    assert state is not None and state.send_status is SendStatus.SENT and state.provider_message_id == other
    assert _types(service) == ["sent", "sent"]


def test_oversized_and_malformed_bodies_are_4xx(app: tuple[LocalHost, ChannelService]) -> None:
    host, _ = app
    big = b"Body=" + b"x" * (MAX_CALLBACK_BYTES + 1)
    assert (
        host.call_http("POST", URL, headers={"Content-Type": "application/x-www-form-urlencoded"}, body=big).status_code
        == 413
    )
    for name in ("loopback", "acs"):
        response = host.call_http(
            "POST", f"{BASE}/{name}", headers={"Content-Type": "application/json"}, body=b"{" * 2_000_000
        )
        assert 400 <= response.status_code < 500
    response = host.call_http(
        "POST", URL, headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"\xff\xfe"
    )
    assert response.status_code in (400, 403)


def test_logs_carry_no_phone_number_token_or_text(
    app: tuple[LocalHost, ChannelService], caplog: pytest.LogCaptureFixture
) -> None:
    host, service = app
    caplog.set_level(logging.DEBUG)
    row = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"
    _send(service, row)
    _status(host, row, "SM" + "1".zfill(32), "delivered")
    _status(host, row, "SM" + "1".zfill(32), "delivered", token="bad")
    inbound = [
        ("MessageSid", "SM" + "9" * 32),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", "STOP now 7700900123"),
        ("AccountSid", TWILIO_SID),
    ]
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, URL, inbound),
    }
    assert host.call_http("POST", URL, headers=headers, body=urlencode(inbound).encode()).status_code == 200
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'custom_dimensions', '')}" for r in caplog.records)
    assert "7700900123" not in text and PHONE not in text
    assert TWILIO_TOKEN not in text
    assert "STOP now" not in text and "Hi " not in text
    assert "keyword" in text  # the reply was recorded (so the scan looked at the interesting lines)
