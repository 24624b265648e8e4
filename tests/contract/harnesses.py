"""Per-provider harnesses for the provider contract suite.

A harness knows how to start its provider's loopback emulator, build the provider module against it, and produce
the HTTP requests the provider's platform would send us: an authentic delivery report (delivered / failed), an
authentic inbound reply, and a forged one. Adding a provider = one provider module + one harness + fixtures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar, Protocol
from urllib.parse import urlencode, urlsplit

import requests

from devtools.emulators.acs import AcsEmulator
from devtools.emulators.twilio import TwilioEmulator, twilio_signature
from devtools.emulators.whatsapp import WhatsAppEmulator
from shared.domain.models import InboundHttpRequest
from shared.ports import Provider
from tests.fakes import FakeClock

SENDER = "+18005550100"


@dataclass(frozen=True)
class Sent:
    """One message as the emulated platform recorded it."""

    provider_message_id: str
    to: str
    body: str


def _request(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> InboundHttpRequest:
    parts = urlsplit(url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    return InboundHttpRequest(
        method=method,
        path=parts.path,
        query=query,
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        raw_query=parts.query,
    )


class Harness(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def provider(self, callback_url: str) -> Provider: ...

    def sent(self) -> list[Sent]: ...

    def reject(self, number: str) -> None:
        """Make the platform refuse this number permanently (invalid number)."""

    def fail_sends(self) -> None:
        """Make the platform answer every send with a transient error (503) until ``heal``."""

    def heal(self) -> None: ...

    def lose_answers(self, count: int) -> None:
        """The provider takes the next ``count`` sends but their answers are lost (connection closed)."""

    def time_out_without_taking(self) -> None:
        """The next send times out at the gateway (504) and the provider keeps nothing."""

    def fail_lookups(self, clock: FakeClock) -> None:
        """The provider's lookup cannot tell (Twilio: the list answers 503; ACS: past its repeatability window)."""

    def status_request(self, callback_url: str, sent: Sent, row_id: str, *, delivered: bool) -> InboundHttpRequest:
        """An authentic delivery report for ``sent`` (whose activity is ``row_id``)."""

    def inbound_request(self, callback_url: str, sender: str, text: str) -> InboundHttpRequest:
        """An authentic reply from ``sender`` to our number."""

    def forged_request(self, callback_url: str, sent: Sent, row_id: str) -> InboundHttpRequest:
        """A delivery report that is not authentic (bad signature / secret)."""


class TwilioHarness:
    name = "twilio"
    account_sid: ClassVar[str] = "AC" + "2" * 32
    auth_token: ClassVar[str] = "contract-auth-token"

    def start(self) -> None:
        self.emulator = TwilioEmulator(self.account_sid, self.auth_token)

    def stop(self) -> None:
        self.emulator.stop()

    def provider(self, callback_url: str) -> Provider:
        from shared.providers.twilio import TwilioProvider

        return TwilioProvider(
            account_sid=self.account_sid,
            auth_token=self.auth_token,
            sender=SENDER,
            messaging_service_sid=None,
            api_base_url=self.emulator.url,
            callback_url=callback_url,
            session=requests.Session(),
            timeout=2.0,
        )

    def sent(self) -> list[Sent]:
        return [Sent(m.sid, m.to, m.body or "") for m in self.emulator.messages]

    def reject(self, number: str) -> None:
        self.emulator.reject(number, 21211, f"The 'To' number {number} is not a valid phone number.")

    def fail_sends(self) -> None:
        self.emulator.inject_error("POST", "Messages.json", status=503, code=20500, message="Internal", times=None)

    def heal(self) -> None:
        self.emulator.clear_faults()

    def lose_answers(self, count: int) -> None:
        self.emulator.lose_answers = count

    def time_out_without_taking(self) -> None:
        body = {"code": 20504, "message": "Gateway timeout", "status": 504}
        self.emulator.inject("POST", r"/Messages\.json", status=504, body=body)

    def fail_lookups(self, clock: FakeClock) -> None:
        body = {"code": 20503, "message": "Service unavailable", "status": 503}
        self.emulator.inject("GET", r"/Messages\.json", status=503, body=body, times=None)

    def _signed(self, url: str, params: list[tuple[str, str]], token: str) -> InboundHttpRequest:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, params),
        }
        return _request(url, urlencode(params).encode(), headers)

    def _status_params(self, sent: Sent, status: str) -> list[tuple[str, str]]:
        params = [
            ("SmsSid", sent.provider_message_id),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", sent.to),
            ("MessageSid", sent.provider_message_id),
            ("AccountSid", self.account_sid),
            ("From", SENDER),
            ("ApiVersion", "2010-04-01"),
        ]
        return params + ([("ErrorCode", "30003")] if status == "undelivered" else [])

    def status_request(self, callback_url: str, sent: Sent, row_id: str, *, delivered: bool) -> InboundHttpRequest:
        params = self._status_params(sent, "delivered" if delivered else "undelivered")
        return self._signed(f"{callback_url}?activity={row_id}", params, self.auth_token)

    def inbound_request(self, callback_url: str, sender: str, text: str) -> InboundHttpRequest:
        sid = "SM" + "7" * 32 if text.upper() != "STOP" else "SM" + "8" * 32
        params = [
            ("SmsMessageSid", sid),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            ("Body", text),
            ("To", SENDER),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", sender),
            ("ApiVersion", "2010-04-01"),
        ]
        return self._signed(callback_url, params, self.auth_token)

    def forged_request(self, callback_url: str, sent: Sent, row_id: str) -> InboundHttpRequest:
        params = self._status_params(sent, "delivered")
        return self._signed(f"{callback_url}?activity={row_id}", params, "not-the-auth-token")


class AcsHarness:
    name = "acs"
    secret: ClassVar[str] = "contract-eventgrid-secret-0123456789"

    def start(self) -> None:
        self.emulator = AcsEmulator()

    def stop(self) -> None:
        self.emulator.stop()

    def provider(self, callback_url: str) -> Provider:
        from shared.providers.acs import AcsProvider

        return AcsProvider(
            endpoint=self.emulator.url,
            sender=SENDER,
            eventgrid_secret=self.secret,
            access_key=self.emulator.access_key,
            session=requests.Session(),
            timeout=2.0,
        )

    def sent(self) -> list[Sent]:
        return [Sent(m.message_id, m.to, m.message) for m in self.emulator.messages]

    def reject(self, number: str) -> None:
        self.emulator.reject(number, 400, "Invalid To phone number format.")

    def fail_sends(self) -> None:
        body = {"error": {"code": "ServiceUnavailable", "message": "try later"}}
        self.emulator.inject("POST", r"^/sms", status=503, body=body, times=None)

    def heal(self) -> None:
        self.emulator.clear_faults()

    def lose_answers(self, count: int) -> None:
        self.emulator.lose_answers = count

    def time_out_without_taking(self) -> None:
        self.emulator.inject("POST", r"^/sms", status=504, body={"error": {"code": "GatewayTimeout", "message": "-"}})

    def fail_lookups(self, clock: FakeClock) -> None:
        clock.advance(minutes=6)  # ACS answers a replay only inside its 5-minute window; past it nobody can tell

    def _post(self, url: str, events: list[dict[str, object]]) -> InboundHttpRequest:
        headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
        return _request(url, json.dumps(events).encode(), headers)

    def status_request(self, callback_url: str, sent: Sent, row_id: str, *, delivered: bool) -> InboundHttpRequest:
        event = self.emulator.delivery_report(sent.provider_message_id, "Delivered" if delivered else "Failed")
        assert event["data"]["tag"] == row_id  # type: ignore[index]
        return self._post(f"{callback_url}?secret={self.secret}", [event])

    def inbound_request(self, callback_url: str, sender: str, text: str) -> InboundHttpRequest:
        event_id = "Incoming_contract-" + ("stop" if text.upper() == "STOP" else "reply")
        event = self.emulator.sms_received(sender, SENDER, text, event_id=event_id)
        return self._post(f"{callback_url}?secret={self.secret}", [event])

    def forged_request(self, callback_url: str, sent: Sent, row_id: str) -> InboundHttpRequest:
        event = self.emulator.delivery_report(sent.provider_message_id, "Delivered")
        return self._post(f"{callback_url}?secret=not-the-secret-{'x' * 20}", [event])


class WhatsAppHarness:
    """Meta's WhatsApp Cloud API (issue #17): JSON sends with a bearer token, webhooks signed X-Hub-Signature-256."""

    name = "whatsapp"
    app_secret: ClassVar[str] = "contract-whatsapp-app-secret-0123"

    def start(self) -> None:
        self.emulator = WhatsAppEmulator(app_secret=self.app_secret)

    def stop(self) -> None:
        self.emulator.stop()

    def provider(self, callback_url: str) -> Provider:
        from shared.providers.whatsapp import WhatsAppProvider

        return WhatsAppProvider(
            phone_number_id=self.emulator.phone_number_id,
            access_token=self.emulator.access_token,
            app_secret=self.app_secret,
            verify_token="contract-verify-token-0123",
            api_base_url=self.emulator.api_base_url,
            session=requests.Session(),
            opt_out_payloads=frozenset({"stop"}),
            timeout=2.0,
        )

    def sent(self) -> list[Sent]:
        return [Sent(m.id, "+" + m.to, m.text) for m in self.emulator.messages]

    def lose_answers(self, count: int) -> None:
        self.emulator.lose_answers = count

    def time_out_without_taking(self) -> None:
        body = {"error": {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2}}
        self.emulator.inject("POST", r"/messages$", status=504, body=body)

    def fail_lookups(self, clock: FakeClock) -> None:
        """The Cloud API has no lookup at all: every lookup already cannot tell."""

    def reject(self, number: str) -> None:
        self.emulator.reject(number, 131030, "Recipient phone number not in allowed list")

    def fail_sends(self) -> None:
        body = {"error": {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2}}
        self.emulator.inject("POST", r"/messages$", status=503, body=body, times=None)

    def heal(self) -> None:
        self.emulator.clear_faults()

    def _post(self, url: str, payload: dict[str, object], secret: str) -> InboundHttpRequest:
        body = json.dumps(payload).encode()
        return _request(url, body, self.emulator.signed_headers(body, secret))

    def status_request(self, callback_url: str, sent: Sent, row_id: str, *, delivered: bool) -> InboundHttpRequest:
        message = next(m for m in self.emulator.messages if m.id == sent.provider_message_id)
        payload = self.emulator.status_payload(message, "delivered" if delivered else "failed")
        return self._post(callback_url, payload, self.app_secret)

    def inbound_request(self, callback_url: str, sender: str, text: str) -> InboundHttpRequest:
        message_id = "wamid.contract-" + ("stop" if text.upper() == "STOP" else "reply")
        return self._post(callback_url, self.emulator.text_payload(sender, text, message_id), self.app_secret)

    def forged_request(self, callback_url: str, sent: Sent, row_id: str) -> InboundHttpRequest:
        message = next(m for m in self.emulator.messages if m.id == sent.provider_message_id)
        return self._post(callback_url, self.emulator.status_payload(message, "delivered"), "not-the-app-secret")


HARNESSES: dict[str, type[TwilioHarness] | type[AcsHarness] | type[WhatsAppHarness]] = {
    "twilio": TwilioHarness,
    "acs": AcsHarness,
    "whatsapp": WhatsAppHarness,
}
