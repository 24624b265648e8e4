"""Loopback emulator of the Azure Communication Services SMS send API, plus an Event Grid publisher.

* ``POST /sms?api-version=2021-03-07`` with the documented body (``from``, ``smsRecipients[{to,
  repeatabilityRequestId, repeatabilityFirstSent}]``, ``message``, ``smsSendOptions{enableDeliveryReport, tag}``),
  answered ``202`` with ``{"value": [{to, messageId, httpStatusCode, repeatabilityResult, errorMessage,
  successful}]}``.
* Authentication: the access-key HMAC the SDK sends (``x-ms-date``, ``x-ms-content-sha256``,
  ``Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=...`` over
  ``VERB\\npath?query\\n<x-ms-date>;<host>;<content hash>``), or a bearer token equal to ``bearer_token``.
* Repeatability as the service documents it (:mod:`devtools.emulators.acs_repeatability`): a recipient whose
  ``repeatabilityRequestId`` was seen within the tracked duration (``repeatability_seconds``, 5 minutes) gets the
  original answer and sends nothing new; a first-sent time outside it gets 412, malformed values or a mismatched
  repeat 400.
* ``reject(number, ...)`` answers that recipient ``successful=false``; ``inject`` (from EmulatorBase) programs
  request-level faults (status codes, delays, dropped connections).
* ``delivery_report`` / ``sms_received`` / ``validation_event`` build Event Grid events in either schema and either
  casing; ``post_events`` / ``options_handshake`` deliver them to a URL like Event Grid does.

Stdlib only. The verifier is written from the documented algorithm, independently of the SDK.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from devtools.emulators._base import DropConnection, EmulatorBase, Incoming, Response, serve_forever
from devtools.emulators.acs_repeatability import TRACKED_SECONDS, Repeatability

__all__ = ["AcsEmulator", "AcsMessage", "hmac_signature"]

API_VERSION = "2021-03-07"
_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_AUTH_RE = re.compile(r"^HMAC-SHA256 SignedHeaders=(?P<headers>[^&]+)&Signature=(?P<signature>.+)$")
MAX_CLOCK_SKEW_SECONDS = 15 * 60
RESOURCE_TOPIC = (
    "/subscriptions/{subscription-id}/resourceGroups/{group-name}/providers/microsoft.communication/"
    "communicationservices/{communication-services-resource-name}"
)


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def hmac_signature(access_key: str, verb: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    """The documented string-to-sign, signed with the base64-decoded access key."""
    string_to_sign = f"{verb.upper()}\n{path_and_query}\n{date};{host};{body_hash}"
    digest = hmac.new(base64.b64decode(access_key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class AcsMessage:
    """A message the emulator accepted."""

    message_id: str
    to: str
    from_: str
    message: str
    tag: str | None
    enable_delivery_report: bool
    repeatability_request_id: str | None
    repeatability_first_sent: str | None
    auth: str  # "hmac" | "bearer"
    received_at: float = field(default_factory=time.time)


@dataclass
class _Reject:
    status: int
    message: str
    remaining: int | None


class AcsEmulator(EmulatorBase):
    """ACS SMS API emulator on 127.0.0.1."""

    server_name = "acs-emulator"

    def __init__(
        self,
        access_key: str | None = None,
        *,
        bearer_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote_callbacks: bool = False,
        repeatability_seconds: float = TRACKED_SECONDS,
    ) -> None:
        if access_key is None and bearer_token is None:
            access_key = base64.b64encode(b"acs-emulator-access-key-0123456789").decode()
        self.access_key = access_key
        self.bearer_token = bearer_token
        self.allow_remote_callbacks = allow_remote_callbacks
        self.messages: list[AcsMessage] = []
        self.auth_failures: list[str] = []
        self.posted: list[tuple[str, int, bytes]] = []  # (url, status, body) of Event Grid deliveries
        self._rejects: dict[str, _Reject] = {}
        self.repeatability = Repeatability(repeatability_seconds)
        self.lose_answers = 0  # the next N executed sends close the connection instead of answering
        self._data_lock = threading.RLock()
        super().__init__(host=host, port=port)

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.url}/;accesskey={self.access_key}"

    # ------------------------------------------------------------------ config
    def reject(
        self,
        number: str,
        status: int = 400,
        message: str = "Invalid To phone number format.",
        *,
        times: int | None = None,
    ) -> None:
        """Answer sends to ``number`` with a per-recipient failure (``successful=false``)."""
        with self._data_lock:
            self._rejects[number] = _Reject(status, message, times)

    def reset(self) -> None:
        super().reset()
        with self._data_lock:
            self.messages.clear()
            self.auth_failures.clear()
            self.posted.clear()
            self._rejects.clear()
            self.repeatability.reset()

    def get_message(self, message_id: str) -> AcsMessage | None:
        with self._data_lock:
            return next((m for m in self.messages if m.message_id == message_id), None)

    # ------------------------------------------------------------------ HTTP
    def _error(self, status: int, code: str, message: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        return Response(status, body, [("Content-Type", "application/json; charset=utf-8"), *extra])

    def _authenticate(self, request: Incoming) -> str | None:
        """The auth scheme used, or None (the reason is appended to ``auth_failures``)."""
        header = request.header("authorization")
        if header.startswith("Bearer "):
            if self.bearer_token is not None and hmac.compare_digest(header[7:].encode(), self.bearer_token.encode()):
                return "bearer"
            self.auth_failures.append("bearer token not accepted")
            return None
        match = _AUTH_RE.match(header)
        if match is None or self.access_key is None:
            self.auth_failures.append("no HMAC-SHA256 or bearer Authorization header")
            return None
        if match.group("headers") != "x-ms-date;host;x-ms-content-sha256":
            self.auth_failures.append(f"unexpected SignedHeaders {match.group('headers')}")
            return None
        date, body_hash = request.header("x-ms-date"), request.header("x-ms-content-sha256")
        if not date or body_hash != content_hash(request.body):
            self.auth_failures.append("x-ms-date missing or x-ms-content-sha256 does not match the body")
            return None
        try:
            skew = abs((datetime.now(UTC) - parsedate_to_datetime(date)).total_seconds())
        except (TypeError, ValueError):
            skew = float("inf")
        if skew > MAX_CLOCK_SKEW_SECONDS:
            self.auth_failures.append("x-ms-date is not a recent RFC 1123 date")
            return None
        expected = hmac_signature(
            self.access_key, request.method, request.target, date, request.header("host"), body_hash
        )
        if not hmac.compare_digest(expected.encode(), match.group("signature").encode()):
            self.auth_failures.append("HMAC signature mismatch")
            return None
        return "hmac"

    def _route(self, request: Incoming) -> Response:
        if request.path.rstrip("/") != "/sms":
            return self._error(404, "NotFound", f"{request.path} not found")
        if request.method != "POST":
            return self._error(405, "MethodNotAllowed", "use POST")
        auth = self._authenticate(request)
        if auth is None:
            return self._error(401, "Unauthorized", "Denied by the resource provider.")
        if f"api-version={API_VERSION}" not in request.query_string:
            return self._error(400, "InvalidApiVersion", "api-version is missing or unsupported")
        try:
            payload = json.loads(request.body)
            sender = str(payload["from"])
            recipients = list(payload["smsRecipients"])
            text = str(payload["message"])
        except (ValueError, KeyError, TypeError):
            return self._error(400, "BadRequest", "from, smsRecipients and message are required")
        options = payload.get("smsSendOptions") or {}
        if not recipients or len(recipients) > 100:
            return self._error(400, "BadRequest", "1 to 100 recipients")
        results = [self._recipient(r, sender, text, options, auth) for r in recipients]
        with self._data_lock:
            if self.lose_answers > 0:  # executed, but the answer is lost (an ambiguous send)
                self.lose_answers -= 1
                raise DropConnection
        return Response(
            202,
            json.dumps({"value": results}).encode(),
            [("Content-Type", "application/json; charset=utf-8"), ("MS-CV", uuid.uuid4().hex)],
        )

    def _recipient(
        self, recipient: Mapping[str, Any], sender: str, text: str, options: Mapping[str, Any], auth: str
    ) -> dict[str, Any]:
        to = str(recipient.get("to", ""))
        request_id = recipient.get("repeatabilityRequestId")
        first_sent = recipient.get("repeatabilityFirstSent")
        with self._data_lock:
            answered = self.repeatability.check(to, text, request_id, first_sent)
            if answered is not None:
                return answered
            result: dict[str, Any] = {"to": to, "repeatabilityResult": "accepted" if request_id else None}
            rejected = self._rejects.get(to)
            if not _E164_RE.match(to):
                result.update(httpStatusCode=400, successful=False, errorMessage="Invalid To phone number format.")
            elif rejected is not None and (rejected.remaining is None or rejected.remaining > 0):
                if rejected.remaining is not None:
                    rejected.remaining -= 1
                result.update(httpStatusCode=rejected.status, successful=False, errorMessage=rejected.message)
            else:
                message = AcsMessage(
                    message_id=f"Outgoing_{datetime.now(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}",
                    to=to,
                    from_=sender,
                    message=text,
                    tag=options.get("tag"),
                    enable_delivery_report=bool(options.get("enableDeliveryReport")),
                    repeatability_request_id=request_id,
                    repeatability_first_sent=recipient.get("repeatabilityFirstSent"),
                    auth=auth,
                )
                self.messages.append(message)
                result.update(messageId=message.message_id, httpStatusCode=202, successful=True, errorMessage=None)
            self.repeatability.remember(to, text, request_id, first_sent, result)
            return result

    # ------------------------------------------------------------------ Event Grid
    def delivery_report(
        self,
        message: AcsMessage | str,
        status: str = "Delivered",
        *,
        details: str | None = None,
        tag: str | None = None,
        event_id: str | None = None,
        schema: str = "eventgrid",
        pascal: bool = False,
    ) -> dict[str, Any]:
        """A ``Microsoft.Communication.SMSDeliveryReportReceived`` event for a sent message (or message id)."""
        sent = message if isinstance(message, AcsMessage) else self.get_message(message)
        message_id = sent.message_id if sent else str(message)
        now = datetime.now(UTC)
        data: dict[str, Any] = {
            "messageId": message_id,
            "from": (sent.from_ if sent else "+18005550100").lstrip("+"),
            "to": sent.to if sent else "+15555555555",
            "deliveryStatus": status,
            "deliveryStatusDetails": details or ("No error." if status == "Delivered" else "Message undeliverable."),
            "receivedTimestamp": _iso(now),
            "deliveryAttempts": [
                {
                    "timestamp": _iso(now),
                    "segmentsSucceeded": 1 if status == "Delivered" else 0,
                    "segmentsFailed": 0 if status == "Delivered" else 1,
                }
            ],
        }
        report_tag = tag if tag is not None else (sent.tag if sent else None)
        if report_tag is not None:
            data["tag"] = report_tag
        return self._event(
            "Microsoft.Communication.SMSDeliveryReportReceived",
            event_id or message_id,
            f"/phonenumber/{data['from']}",
            data,
            schema=schema,
            pascal=pascal,
        )

    def sms_received(
        self,
        from_: str,
        to: str,
        text: str,
        *,
        event_id: str | None = None,
        schema: str = "eventgrid",
        pascal: bool = False,
    ) -> dict[str, Any]:
        """A ``Microsoft.Communication.SMSReceived`` event (numbers without ``+``, like Microsoft's sample)."""
        message_id = event_id or f"Incoming_{datetime.now(UTC):%Y%m%d%H%M%S}{uuid.uuid4()}"
        data = {
            "messageId": message_id,
            "from": from_.lstrip("+"),
            "to": to.lstrip("+"),
            "message": text,
            "receivedTimestamp": _iso(datetime.now(UTC)),
            "segmentCount": 1,
        }
        return self._event(
            "Microsoft.Communication.SMSReceived", message_id, f"/phonenumber/{data['to']}", data, schema, pascal
        )

    @staticmethod
    def validation_event(code: str = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6") -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
            "subject": "",
            "data": {
                "validationCode": code,
                "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/acs/validate?id=0",
            },
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": _iso(datetime.now(UTC)),
            "metadataVersion": "1",
            "dataVersion": "1",
        }

    @staticmethod
    def _event(
        event_type: str, event_id: str, subject: str, data: dict[str, Any], schema: str, pascal: bool
    ) -> dict[str, Any]:
        if pascal:
            data = {key[0].upper() + key[1:]: _pascal(value) for key, value in data.items()}
        now = _iso(datetime.now(UTC))
        if schema == "cloudevents":
            return {
                "id": event_id,
                "source": RESOURCE_TOPIC,
                "subject": subject,
                "data": data,
                "type": event_type,
                "time": now,
                "specversion": "1.0",
                "datacontenttype": "application/json",
            }
        return {
            "id": event_id,
            "topic": RESOURCE_TOPIC,
            "subject": subject,
            "data": data,
            "eventType": event_type,
            "dataVersion": "1.0",
            "metadataVersion": "1",
            "eventTime": now,
        }

    def post_events(
        self,
        url: str,
        events: Sequence[Mapping[str, Any]],
        *,
        schema: str = "eventgrid",
        batch: bool = True,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """POST events like Event Grid: an array (Event Grid schema), one CloudEvent or a CloudEvents batch."""
        headers = {"aeg-delivery-count": "0", "aeg-metadata-version": "1", "User-Agent": "Microsoft-EventGrid"}
        if schema == "cloudevents":
            if batch:
                body, ctype = json.dumps(list(events)), "application/cloudevents-batch+json; charset=utf-8"
            else:
                body, ctype = json.dumps(events[0]), "application/cloudevents+json; charset=utf-8"
        else:
            body, ctype = json.dumps(list(events)), "application/json"
            kinds = {str(e.get("eventType", "")) for e in events}
            validation = "Microsoft.EventGrid.SubscriptionValidationEvent" in kinds
            headers["aeg-event-type"] = "SubscriptionValidation" if validation else "Notification"
        headers["Content-Type"] = ctype
        status, payload, _ = self._request("POST", url, headers, body.encode("utf-8"), timeout)
        with self._data_lock:
            self.posted.append((url, status, payload))
        return status, payload

    def options_handshake(
        self, url: str, origin: str = "eventgrid.azure.net", timeout: float = 10.0
    ) -> tuple[int, dict[str, str]]:
        """The CloudEvents 1.0 abuse-protection request Event Grid sends before delivering."""
        status, _, headers = self._request(
            "OPTIONS", url, {"WebHook-Request-Origin": origin, "WebHook-Request-Rate": "120"}, None, timeout
        )
        return status, headers

    def _request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, bytes, dict[str, str]]:
        self._check_target(url)
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - checked
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
                return int(response.status), response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read(), {k.lower(): v for k, v in exc.headers.items()}

    def _check_target(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        if self.allow_remote_callbacks:
            return
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"refusing to post to non-loopback host {parts.hostname!r} (allow_remote_callbacks)")


def _pascal(value: Any) -> Any:
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    if isinstance(value, dict):
        return {k[0].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    return value


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback ACS SMS API emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--access-key", default=None)
    parser.add_argument("--bearer-token", default=None)
    args = parser.parse_args(argv)
    emulator = AcsEmulator(args.access_key, bearer_token=args.bearer_token, host=args.host, port=args.port)
    return serve_forever(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
