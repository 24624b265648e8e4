"""Tests for devtools.emulators.twilio (loopback only)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from devtools.emulators.twilio import (
    TwilioEmulator,
    segment_count,
    twilio_signature,
    validate_twilio_signature,
)

ACCOUNT_SID = "AC" + "1234567890abcdef" * 2  # same values as the `tw` fixture in conftest.py
AUTH_TOKEN = "test-auth-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]
MG = "MG" + "abcdef0123456789" * 2


def send(
    tw: TwilioEmulator,
    data: dict[str, Any] | list[tuple[str, str]],
    auth: tuple[str, str] | None = None,
    sid: str = ACCOUNT_SID,
) -> requests.Response:
    return requests.post(
        f"{tw.url}/2010-04-01/Accounts/{sid}/Messages.json",
        data=data,
        auth=auth or (ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )


def twilio_error(resp: requests.Response, code: int) -> dict[str, Any]:
    body = resp.json()
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": resp.status_code,
    }
    return dict(body)


# --------------------------------------------------------------------------- send API
def test_send_success_returns_message_resource(tw: TwilioEmulator) -> None:
    resp = send(
        tw,
        {"To": "+14155550101", "From": "+15005550006", "Body": "Hello", "StatusCallback": "http://127.0.0.1:1/cb?x=1"},
    )
    assert resp.status_code == 201
    msg = resp.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg["sid"])
    assert msg["account_sid"] == ACCOUNT_SID
    assert (msg["to"], msg["from"], msg["body"]) == ("+14155550101", "+15005550006", "Hello")
    assert msg["status"] == "queued"
    assert msg["direction"] == "outbound-api"
    assert msg["api_version"] == "2010-04-01"
    assert msg["num_segments"] == "1"
    assert msg["error_code"] is None and msg["error_message"] is None and msg["price"] is None
    assert msg["messaging_service_sid"] is None
    assert msg["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{msg['sid']}.json"
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", msg["date_created"])
    [recorded] = tw.messages
    assert (recorded.sid, recorded.to, recorded.from_, recorded.body) == (
        msg["sid"],
        "+14155550101",
        "+15005550006",
        "Hello",
    )
    assert recorded.status_callback == "http://127.0.0.1:1/cb?x=1"
    fetched = requests.get(f"{tw.url}{msg['uri']}", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert fetched.status_code == 200 and fetched.json()["sid"] == msg["sid"]


def test_send_with_messaging_service_is_accepted(tw: TwilioEmulator) -> None:
    resp = send(tw, {"To": "whatsapp:+447700900123", "MessagingServiceSid": MG, "Body": "x" * 200})
    assert resp.status_code == 201
    msg = resp.json()
    assert msg["status"] == "accepted"
    assert msg["messaging_service_sid"] == MG
    assert msg["num_segments"] == "0"
    assert msg["from"] is None
    assert tw.messages[0].messaging_service_sid == MG


@pytest.mark.parametrize(
    ("auth", "sid"),
    [
        ((ACCOUNT_SID, "wrong"), ACCOUNT_SID),
        (("AC" + "f" * 32, AUTH_TOKEN), ACCOUNT_SID),
        ((ACCOUNT_SID, AUTH_TOKEN), "AC" + "f" * 32),
    ],
)
def test_bad_auth_is_401_authenticate(tw: TwilioEmulator, auth: tuple[str, str], sid: str) -> None:
    resp = send(tw, {"To": "+14155550101", "From": "+15005550006", "Body": "x"}, auth=auth, sid=sid)
    assert resp.status_code == 401
    assert resp.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert tw.messages == []


def test_missing_auth_is_401(tw: TwilioEmulator) -> None:
    resp = requests.post(f"{tw.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data={"To": "+1"}, timeout=5)
    assert resp.status_code == 401
    twilio_error(resp, 20003)


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"From": "+15005550006", "Body": "x"}, 21604, "A 'To' phone number is required."),
        (
            {"To": "4155550101", "From": "+15005550006", "Body": "x"},
            21211,
            "The 'To' number 4155550101 is not a valid phone number.",
        ),
        ({"To": "+1 415 555", "From": "+15005550006", "Body": "x"}, 21211, None),
        ({"To": "+14155550101", "Body": "x"}, 21603, "A 'From' phone number is required."),
        ({"To": "+14155550101", "From": "+15005550006"}, 21602, "Message body is required."),
        ({"To": "+14155550101", "From": "+15005550006", "Body": "x" * 1601}, 21617, None),
        ({"To": "whatsapp:+14155550101", "From": "+15005550006", "Body": "x"}, 21910, None),
    ],
)
def test_validation_errors(tw: TwilioEmulator, data: dict[str, str], code: int, message: str | None) -> None:
    resp = send(tw, data)
    assert resp.status_code == 400
    body = twilio_error(resp, code)
    if message is not None:
        assert body["message"] == message
    assert tw.messages == []


def test_media_without_body_and_1600_chars_are_fine(tw: TwilioEmulator) -> None:
    assert (
        send(tw, {"To": "+14155550101", "From": "+15005550006", "MediaUrl": "https://example.com/a.jpg"}).status_code
        == 201
    )
    assert send(tw, {"To": "+14155550101", "From": "+15005550006", "Body": "x" * 1600}).status_code == 201
    assert tw.messages[0].sid.startswith("MM")
    assert tw.messages[1].num_segments == 11


def test_reject_per_number(tw: TwilioEmulator) -> None:
    tw.reject("+14155550199", 21610, "Attempt to send to unsubscribed recipient")
    tw.reject("+14155550198", 21408, "Permission to send an SMS has not been enabled for the region", times=1)
    resp = send(tw, {"To": "+14155550199", "From": "+15005550006", "Body": "hi"})
    assert resp.status_code == 400
    assert twilio_error(resp, 21610)["message"] == "Attempt to send to unsubscribed recipient"
    assert send(tw, {"To": "+14155550198", "From": "+15005550006", "Body": "hi"}).status_code == 400
    assert send(tw, {"To": "+14155550198", "From": "+15005550006", "Body": "hi"}).status_code == 201
    assert send(tw, {"To": "+14155550199", "From": "+15005550006", "Body": "hi"}).status_code == 400
    assert [m.to for m in tw.messages] == ["+14155550198"]


def test_inject_and_drop(tw: TwilioEmulator) -> None:
    tw.inject_error(
        "POST", r"/Messages\.json$", status=429, code=20429, message="Too Many Requests", headers={"Retry-After": "2"}
    )
    resp = send(tw, {"To": "+14155550101", "From": "+15005550006", "Body": "x"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    twilio_error(resp, 20429)
    tw.inject("POST", r"Messages", status=0)
    with pytest.raises(requests.ConnectionError):
        send(tw, {"To": "+14155550101", "From": "+15005550006", "Body": "x"})
    assert send(tw, {"To": "+14155550101", "From": "+15005550006", "Body": "x"}).status_code == 201
    assert len(tw.requests) == 3
    assert all(r.headers.get("Authorization") == "<redacted>" for r in tw.requests)


def test_segment_count() -> None:
    assert segment_count("a" * 160) == 1
    assert segment_count("a" * 161) == 2
    assert segment_count("a" * 306) == 2
    assert segment_count("a" * 307) == 3
    assert segment_count("é" * 160) == 1  # é is in the GSM-7 basic set
    assert segment_count("ж" * 70) == 1
    assert segment_count("ж" * 71) == 2
    assert segment_count("€" * 80) == 1  # extension chars count twice
    assert segment_count("€" * 81) == 2


# --------------------------------------------------------------------------- signature vectors
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def test_signature_vector_a() -> None:
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_vector_d_json_body() -> None:
    body = '{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body.encode()).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert twilio_signature("12345", f"{VECTOR_URL}&bodySHA256={digest}", None) == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_signature_vector_e_duplicate_keys() -> None:
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", VECTOR_URL, pairs) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    as_mapping = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
    assert twilio_signature("12345", VECTOR_URL, as_mapping) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ],
)
def test_signature_vector_f_ports(url: str, expected: str) -> None:
    assert twilio_signature("12345", url, VECTOR_PARAMS) == expected


def test_validate_signature() -> None:
    assert validate_twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not validate_twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8")
    assert not validate_twilio_signature("54321", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


# --------------------------------------------------------------------------- webhooks to a local receiver
@dataclass
class Receiver:
    server: ThreadingHTTPServer
    hits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hits: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            params = parse_qsl(raw, keep_blank_values=True)
            url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
            signature = self.headers.get("X-Twilio-Signature")
            valid = signature is not None and validate_twilio_signature(AUTH_TOKEN, url, params, signature)
            hits.append(
                {
                    "path": self.path,
                    "params": dict(params),
                    "signature": signature,
                    "valid": valid,
                    "content_type": self.headers.get("Content-Type"),
                }
            )
            status = 200 if valid else 403
            body = b"<Response/>" if valid else b"forbidden"
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Receiver(server, hits)
    finally:
        server.shutdown()
        server.server_close()


def _sent(tw: TwilioEmulator, callback: str, to: str = "+14155550101", from_: str = "+15005550006") -> str:
    resp = send(tw, {"To": to, "From": from_, "Body": "hi", "StatusCallback": callback})
    assert resp.status_code == 201
    return str(resp.json()["sid"])


def test_status_callback_is_signed(tw: TwilioEmulator, receiver: Receiver) -> None:
    sid = _sent(tw, f"{receiver.base}/api/twilio/status?tenant=a&x=1")
    status, body = tw.send_status(sid, "delivered")
    assert (status, body) == (200, "<Response/>")
    [hit] = receiver.hits
    assert hit["valid"] is True
    assert hit["path"] == "/api/twilio/status?tenant=a&x=1"
    assert hit["content_type"] == "application/x-www-form-urlencoded"
    params = hit["params"]
    assert params["MessageSid"] == params["SmsSid"] == sid
    assert params["MessageStatus"] == params["SmsStatus"] == "delivered"
    assert params["AccountSid"] == ACCOUNT_SID
    assert (params["To"], params["From"], params["ApiVersion"]) == ("+14155550101", "+15005550006", "2010-04-01")
    assert "ErrorCode" not in params
    assert tw.get_message(sid).status == "delivered"  # type: ignore[union-attr]
    assert tw.callbacks[0].status_code == 200


def test_status_callback_with_error_code(tw: TwilioEmulator, receiver: Receiver) -> None:
    sid = _sent(tw, f"{receiver.base}/status")
    assert tw.send_status(sid, "undelivered", error_code=30003)[0] == 200
    assert receiver.hits[0]["params"]["ErrorCode"] == "30003"
    msg = requests.get(
        f"{tw.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
    ).json()
    assert (msg["status"], msg["error_code"]) == ("undelivered", 30003)


def test_whatsapp_status_callback_has_channel_params(tw: TwilioEmulator, receiver: Receiver) -> None:
    sid = _sent(tw, f"{receiver.base}/status", to="whatsapp:+14155550101", from_="whatsapp:+15005550006")
    assert tw.send_status(sid, "read")[0] == 200
    params = receiver.hits[0]["params"]
    assert params["ChannelPrefix"] == "whatsapp"
    assert params["ChannelToAddress"] == "+14155550101"
    assert params["To"] == "whatsapp:+14155550101"
    assert receiver.hits[0]["valid"] is True


def test_unsigned_and_forged_callbacks_are_refused(tw: TwilioEmulator, receiver: Receiver) -> None:
    sid = _sent(tw, f"{receiver.base}/status")
    assert tw.send_status(sid, "sent", sign=False)[0] == 403
    assert tw.send_status(sid, "sent", signature="forged")[0] == 403
    assert [h["signature"] for h in receiver.hits] == [None, "forged"]


def test_url_override_signs_the_original_url(tw: TwilioEmulator, receiver: Receiver) -> None:
    sid = _sent(tw, f"{receiver.base}/status")
    status, _ = tw.send_status(sid, "sent", url_override=f"{receiver.base}/other")
    assert status == 403  # the receiver sees /other but the signature covers /status
    hit = receiver.hits[0]
    assert hit["path"] == "/other"
    expected = twilio_signature(AUTH_TOKEN, f"{receiver.base}/status", list(hit["params"].items()))
    assert hit["signature"] == expected


def test_inbound_webhook_is_signed(tw: TwilioEmulator, receiver: Receiver) -> None:
    status, body = tw.send_inbound(
        f"{receiver.base}/api/twilio/inbound", "+447700900123", "+15005550006", "STOP", messaging_service_sid=MG
    )
    assert (status, body) == (200, "<Response/>")
    params = receiver.hits[0]["params"]
    assert receiver.hits[0]["valid"] is True
    assert (params["From"], params["To"], params["Body"]) == ("+447700900123", "+15005550006", "STOP")
    assert params["SmsStatus"] == "received"
    assert params["NumMedia"] == "0" and params["NumSegments"] == "1"
    assert params["MessageSid"] == params["SmsMessageSid"] == params["SmsSid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert params["MessagingServiceSid"] == MG
    assert params["FromCountry"] == "GB" and params["ToCountry"] == "US"
    assert params["AccountSid"] == ACCOUNT_SID and params["ApiVersion"] == "2010-04-01"


def test_inbound_forged_is_refused(tw: TwilioEmulator, receiver: Receiver) -> None:
    assert tw.send_inbound(f"{receiver.base}/in", "+447700900123", "+15005550006", "hi", signature="forged")[0] == 403
    assert tw.send_inbound(f"{receiver.base}/in", "+447700900123", "+15005550006", "hi", sign=False)[0] == 403


def test_webhooks_refuse_non_loopback_targets(tw: TwilioEmulator) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        tw.send_inbound("https://example.com/in", "+447700900123", "+15005550006", "hi")


def test_cli_serves() -> None:
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "devtools.emulators.twilio",
            "--port",
            "0",
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = requests.post(
            f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
            data={"To": "+14155550101", "From": "+15005550006", "Body": "x"},
            auth=(ACCOUNT_SID, AUTH_TOKEN),
            timeout=5,
        )
        assert resp.status_code == 201
        assert json.loads(resp.text)["status"] == "queued"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
