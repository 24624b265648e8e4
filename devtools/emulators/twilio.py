"""Loopback emulator of Twilio Programmable Messaging (send API + webhooks).

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded,
  HTTP Basic ``AccountSid:AuthToken``) with Twilio's error JSON and codes.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``.
* ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json``: the list resource with its filters, paging and a
  configurable listing lag (``list_lag_seconds``), see :mod:`devtools.emulators.twilio_list`.
* ``send_status`` / ``send_inbound`` post signed (``X-Twilio-Signature``)
  status callbacks and inbound-message webhooks to your app.

The signer ``twilio_signature`` is implemented here independently of the
app's validator.  Stdlib only.

Run ``python -m devtools.emulators.twilio --port 0 --account-sid AC... --auth-token ...``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from devtools.emulators import twilio_list
from devtools.emulators._base import DropConnection, EmulatorBase, Incoming, Response, serve_forever
from devtools.emulators.twilio_content import button_params, render_content

__all__ = [
    "CallbackRecord",
    "TwilioEmulator",
    "TwilioMessage",
    "segment_count",
    "twilio_signature",
    "validate_twilio_signature",
]

API_VERSION = "2010-04-01"
_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_SEND_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_FETCH_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages/(?P<msid>[^/]+)\.json$")
MAX_BODY = 1600

ParamsLike = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] | None

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def _pairs(params: ParamsLike) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in params.items():
            if isinstance(value, str):
                out.append((key, value))
            else:
                out.extend((key, v) for v in value)
        return out
    return [(k, v) for k, v in params]


def twilio_signature(auth_token: str, url: str, params: ParamsLike = None) -> str:
    """Compute ``X-Twilio-Signature``: base64(HMAC-SHA1(token, url + sorted k+v))."""
    data = url + "".join(k + v for k, v in sorted(_pairs(params)))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def validate_twilio_signature(auth_token: str, url: str, params: ParamsLike, signature: str) -> bool:
    """Constant-time check of ``signature`` for ``url`` and ``params``."""
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def segment_count(body: str) -> int:
    """SMS segments: GSM-7 160/153 chars, otherwise UCS-2 70/67 UTF-16 units."""
    if not body:
        return 1
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXT for ch in body):
        units = sum(2 if ch in _GSM7_EXT else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else -(-units // multi)


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _rfc2822(ts: float | None = None) -> str:
    return formatdate(ts if ts is not None else time.time(), usegmt=False).replace("-0000", "+0000")


def _country(number: str) -> str:
    digits = number.removeprefix("whatsapp:")
    for prefix, country in (("+1", "US"), ("+44", "GB"), ("+33", "FR"), ("+49", "DE"), ("+31", "NL"), ("+61", "AU")):
        if digits.startswith(prefix):
            return country
    return ""


@dataclass
class TwilioMessage:
    """An outbound message the emulator accepted."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str | None
    status_callback: str | None
    messaging_service_sid: str | None
    status: str
    num_segments: int
    date_created: str
    date_updated: str
    media_urls: list[str] = field(default_factory=list)
    params: dict[str, list[str]] = field(default_factory=dict)
    error_code: int | None = None
    error_message: str | None = None
    created_ts: float = 0.0  # when it was created (the list shows it list_lag_seconds later)
    date_sent: str | None = None  # RFC 2822; set when it leaves the queue (a status past queued/accepted)

    @property
    def channel(self) -> str:
        return "whatsapp" if self.to.startswith("whatsapp:") else "sms"

    def resource(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body or "",
            "date_created": self.date_created,
            "date_sent": self.date_sent,
            "date_updated": self.date_updated,
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": "0" if self.messaging_service_sid and self.status == "accepted" else str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}/Media.json"},
            "to": self.to,
            "uri": uri,
        }


@dataclass
class CallbackRecord:
    """A webhook the emulator posted (status callback or inbound message)."""

    kind: str  # "status" or "inbound"
    url: str  # URL that was signed
    posted_to: str  # URL actually requested
    params: list[tuple[str, str]]
    signature: str | None
    status_code: int
    response_body: str


@dataclass
class _Reject:
    code: int
    message: str
    status: int
    remaining: int | None


class TwilioEmulator(EmulatorBase):
    """Twilio Messages API emulator on 127.0.0.1."""

    server_name = "twilio-emulator"

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 31 + "1",
        auth_token: str = "dev-auth-token",  # noqa: S107 - a fixed loopback test credential
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote_callbacks: bool = False,
        list_lag_seconds: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.list_lag_seconds = list_lag_seconds
        self.lose_answers = 0  # the next N accepted creates close the connection instead of answering
        self.auth_token = auth_token
        self.allow_remote_callbacks = allow_remote_callbacks
        self.messages: list[TwilioMessage] = []
        self.callbacks: list[CallbackRecord] = []
        self._rejects: dict[str, _Reject] = {}
        self.contents: dict[str, str] = {}  # Content API templates: ContentSid -> text with {{1}} variables
        self._data_lock = threading.RLock()
        super().__init__(host=host, port=port)

    def add_content(self, content_sid: str, text: str) -> None:
        """Register an approved content template (``HX…``) for ContentSid sends."""
        self.contents[content_sid] = text

    # ------------------------------------------------------------------ config
    def reject(self, number: str, code: int, message: str, status: int = 400, *, times: int | None = None) -> None:
        """Make sends to ``number`` fail with Twilio error ``code`` (e.g. 21610)."""
        with self._data_lock:
            self._rejects[number] = _Reject(code, message, status, times)

    def clear_rejects(self) -> None:
        with self._data_lock:
            self._rejects.clear()

    def reset(self) -> None:
        """Clear logs, faults, latency, messages, callbacks and rejects."""
        super().reset()
        with self._data_lock:
            self.messages.clear()
            self.callbacks.clear()
            self._rejects.clear()

    def get_message(self, sid: str) -> TwilioMessage | None:
        with self._data_lock:
            return next((m for m in self.messages if m.sid == sid), None)

    def inject_error(
        self,
        method: str,
        path_regex: str,
        *,
        status: int,
        code: int,
        message: str,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """Inject a Twilio-shaped JSON error (e.g. 429 / code 20429)."""
        self.inject(
            method,
            path_regex,
            status=status,
            body=json.dumps(_error_body(code, message, status)).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            times=times,
            delay=delay,
        )

    # ------------------------------------------------------------------ HTTP
    def _error(self, status: int, code: int, message: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
        return Response(
            status,
            json.dumps(_error_body(code, message, status)).encode(),
            [("Content-Type", "application/json; charset=utf-8"), ("Twilio-Request-Id", _new_sid("RQ")), *extra],
        )

    def _authorized(self, header: str) -> bool:
        scheme, _, blob = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(blob.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.account_sid.encode()) and hmac.compare_digest(
            password.encode(), self.auth_token.encode()
        )

    def _route(self, request: Incoming) -> Response:
        send = _SEND_RE.match(request.path)
        fetch = _FETCH_RE.match(request.path)
        if not send and not fetch:
            return self._error(404, 20404, f"The requested resource {request.path} was not found")
        if not self._authorized(request.header("authorization")):
            return self._error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        path_sid = (send or fetch).group("sid")  # type: ignore[union-attr]
        if path_sid != self.account_sid:
            return self._error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        if fetch:
            if request.method != "GET":
                return self._error(405, 20004, "Method not allowed")
            message = self.get_message(fetch.group("msid"))
            if message is None:
                return self._error(404, 20404, f"The requested resource {request.path} was not found")
            return self._json(200, message.resource())
        if request.method == "GET":
            return self._list_messages(request)
        if request.method != "POST":
            return self._error(405, 20004, "Method not allowed")
        return self._create_message(request)

    def _list_messages(self, request: Incoming) -> Response:
        with self._data_lock:
            listed = [
                twilio_list.Listed(m.sid, m.to, m.from_, m.date_sent, m.created_ts, m.resource) for m in self.messages
            ]
            try:
                page = twilio_list.list_page(
                    request.path, request.query_string, listed, time.time(), self.list_lag_seconds
                )
            except twilio_list.ListError as error:
                return self._error(400, error.code, str(error))
        return self._json(200, page)

    def _json(self, status: int, obj: Any) -> Response:
        return Response(
            status,
            json.dumps(obj).encode(),
            [("Content-Type", "application/json; charset=utf-8"), ("Twilio-Request-Id", _new_sid("RQ"))],
        )

    def _create_message(self, request: Incoming) -> Response:
        form: dict[str, list[str]] = {}
        if request.header("content-type").lower().startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True):
                form.setdefault(key, []).append(value)

        def first(name: str) -> str:
            return form.get(name, [""])[0].strip()

        to, from_, service = first("To"), first("From"), first("MessagingServiceSid")
        body = form.get("Body", [""])[0]
        media = [m for m in form.get("MediaUrl", []) if m.strip()]
        content_sid = first("ContentSid")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not _valid_address(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_ and not service:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if service and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
            return self._error(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        if from_ and to.startswith("whatsapp:") != from_.startswith("whatsapp:"):
            return self._error(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
        if not body and not media and not content_sid:
            return self._error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if content_sid:  # a Content API template: the variables fill the delivered text
            problem, body = render_content(content_sid, form.get("ContentVariables", [""])[0], self.contents)
            if problem is not None:
                return self._error(400, *problem)
        with self._data_lock:
            rejected = self._rejects.get(to)
            if rejected is not None and (rejected.remaining is None or rejected.remaining > 0):
                if rejected.remaining is not None:
                    rejected.remaining -= 1
                return self._error(rejected.status, rejected.code, rejected.message)
            now = _rfc2822()
            message = TwilioMessage(
                sid=_new_sid("MM" if media else "SM"),
                account_sid=self.account_sid,
                to=to,
                from_=from_ or None,
                body=body,
                status_callback=first("StatusCallback") or None,
                messaging_service_sid=service or None,
                status="accepted" if service else "queued",
                num_segments=segment_count(body),
                date_created=now,
                date_updated=now,
                media_urls=media,
                params=form,
                created_ts=time.time(),
            )
            self.messages.append(message)
            if self.lose_answers > 0:  # accepted, but the answer is lost (an ambiguous send)
                self.lose_answers -= 1
                raise DropConnection
        return self._json(201, message.resource())

    # ------------------------------------------------------------------ webhooks
    def send_status(
        self,
        sid: str,
        status: str,
        error_code: int | str | None = None,
        *,
        sign: bool = True,
        signature: str | None = None,
        url_override: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST a status callback for message ``sid`` to its ``StatusCallback`` URL.

        ``signature`` replaces the computed ``X-Twilio-Signature`` (forgery);
        ``sign=False`` omits it; ``url_override`` posts elsewhere while the
        signature still covers the StatusCallback URL.  Returns (status, body).
        """
        message = self.get_message(sid)
        if message is None:
            raise KeyError(f"unknown message sid {sid}")
        if not message.status_callback:
            raise ValueError(f"message {sid} was sent without a StatusCallback URL")
        params: list[tuple[str, str]] = []
        if message.channel == "whatsapp":
            params += [
                ("ChannelInstallSid", "XE" + hashlib.md5(self.account_sid.encode()).hexdigest()),  # noqa: S324
                ("ChannelPrefix", "whatsapp"),
                ("ChannelToAddress", message.to.removeprefix("whatsapp:")),
                ("ChannelStatusMessage", status),
            ]
        params += [
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", message.to),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", message.from_ or "+15005550006"),
            ("ApiVersion", API_VERSION),
        ]
        if message.messaging_service_sid:
            params.append(("MessagingServiceSid", message.messaging_service_sid))
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        if status == "delivered" and message.channel == "sms":
            params.append(("RawDlrDoneDate", time.strftime("%y%m%d%H%M", time.gmtime())))
        params += list((extra_params or {}).items())
        with self._data_lock:
            message.status = status
            message.date_updated = _rfc2822()
            if status not in ("queued", "accepted", "scheduled") and message.date_sent is None:
                message.date_sent = message.date_updated
            if error_code is not None:
                message.error_code = int(error_code)
        return self._post_webhook(
            "status",
            message.status_callback,
            params,
            sign=sign,
            signature=signature,
            url_override=url_override,
            timeout=timeout,
        )

    def send_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        messaging_service_sid: str | None = None,
        media_urls: Sequence[str] = (),
        sign: bool = True,
        signature: str | None = None,
        url_override: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        profile_name: str = "Demo User",
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST an inbound "A message comes in" webhook to ``url``. Returns (status, body)."""
        sid = _new_sid("MM" if media_urls else "SM")
        params: list[tuple[str, str]] = [
            ("ToCountry", _country(to)),
            ("ToState", ""),
            ("SmsMessageSid", sid),
            ("NumMedia", str(len(media_urls))),
            ("ToCity", ""),
            ("FromZip", ""),
            ("SmsSid", sid),
            ("FromState", ""),
            ("SmsStatus", "received"),
            ("FromCity", ""),
            ("Body", body),
            ("FromCountry", _country(from_)),
            ("To", to),
            ("ToZip", ""),
            ("NumSegments", str(segment_count(body))),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", from_),
            ("ApiVersion", API_VERSION),
        ]
        if messaging_service_sid:
            params.append(("MessagingServiceSid", messaging_service_sid))
        for i, media in enumerate(media_urls):
            params += [(f"MediaUrl{i}", media), (f"MediaContentType{i}", "image/jpeg")]
        if from_.startswith("whatsapp:"):
            params += [("ProfileName", profile_name), ("WaId", from_.removeprefix("whatsapp:+"))]
        params += list((extra_params or {}).items())
        return self._post_webhook(
            "inbound", url, params, sign=sign, signature=signature, url_override=url_override, timeout=timeout
        )

    def send_button_reply(self, url: str, from_: str, to: str, payload: str, text: str) -> tuple[int, str]:
        """POST a signed inbound webhook for a WhatsApp quick-reply button tap (``ButtonPayload`` / ``ButtonText``)."""
        return self.send_inbound(url, from_, to, text, extra_params=button_params(payload, text))

    def _post_webhook(
        self,
        kind: str,
        url: str,
        params: list[tuple[str, str]],
        *,
        sign: bool,
        signature: str | None,
        url_override: str | None,
        timeout: float,
    ) -> tuple[int, str]:
        signed_url = _strip_fragment(url)
        target = _strip_fragment(url_override or url)
        self._check_target(target)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        sig: str | None = None
        if signature is not None:
            sig = signature
        elif sign:
            sig = twilio_signature(self.auth_token, signed_url, params)
        if sig is not None:
            headers["X-Twilio-Signature"] = sig
        if urlsplit(target).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s): {target!r}")
        req = urllib.request.Request(  # noqa: S310 - scheme checked above; loopback by default
            target, data=urlencode(params).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
                status, text = int(resp.status), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = int(exc.code), exc.read().decode("utf-8", "replace")
        with self._data_lock:
            self.callbacks.append(CallbackRecord(kind, signed_url, target, params, sig, status, text))
        return status, text

    def _check_target(self, url: str) -> None:
        if self.allow_remote_callbacks:
            return
        host = urlsplit(url).hostname or ""
        if host == "localhost":
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise ValueError(f"refusing to post a webhook to non-loopback host {host!r} (allow_remote_callbacks=False)")


def _strip_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _valid_address(value: str) -> bool:
    return bool(_E164_RE.match(value.removeprefix("whatsapp:")))


def _error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback Twilio Messages API emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--account-sid", default="AC" + "0" * 31 + "1")
    parser.add_argument("--auth-token", default="dev-auth-token")
    parser.add_argument("--list-lag-seconds", type=float, default=0.0, help="delay before a message is listed")
    args = parser.parse_args(argv)
    emulator = TwilioEmulator(
        args.account_sid, args.auth_token, host=args.host, port=args.port, list_lag_seconds=args.list_lag_seconds
    )
    return serve_forever(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
