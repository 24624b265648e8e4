"""Loopback emulator of Meta's WhatsApp Cloud API (issue #17): the messages endpoint and signed webhooks.

* ``POST /{version}/{phone-number-id}/messages`` (JSON, ``Authorization: Bearer <token>``) with the documented
  message objects (``type`` ``text``, ``image`` or ``template`` with ``language`` and ``components``), answered
  ``200 {"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid…", "message_status"}]}``;
  errors as Graph API error bodies ``{"error": {"message", "type", "code", "error_data": {"details"}, "fbtrace_id"}}``
  (190 bad token, 100 bad parameter / unknown phone number id, 132001 unknown template, 132000 parameter count).
* Templates are registered with :meth:`add_template` (body text with ``{{1}}`` or ``{{name}}`` variables); the
  delivered text is the body with the parameters filled. With ``session_window=True`` a free-form message to a
  number without an open session (:meth:`open_session`) is accepted but fails with 131047, as the real service does.
* Webhooks: :meth:`status_payload`, :meth:`text_payload`, :meth:`button_payload`, :meth:`interactive_payload` build
  the documented notification bodies; :meth:`post_webhook` signs them with ``X-Hub-Signature-256`` and posts them;
  :meth:`verify_subscription` performs the ``hub.*`` GET handshake.

Stdlib only; written from Meta's documented formats. Run ``python -m devtools.emulators.whatsapp --port 0``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from devtools.emulators._base import DropConnection, EmulatorBase, Incoming, Response, serve_forever

__all__ = ["CloudMessage", "WhatsAppEmulator", "hub_signature"]

_MESSAGES = re.compile(r"^/(?P<version>v[0-9.]+)/(?P<phone>[0-9]+)/messages$")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_WA_NUMBER = re.compile(r"^\+?[1-9][0-9]{6,14}$")
WABA_ID = "102290129340398"


def hub_signature(app_secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256``: ``sha256=`` + hex HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class CloudMessage:
    """A message the emulator accepted."""

    id: str
    to: str  # digits, as WhatsApp ids are
    type: str
    text: str  # what the handset shows (template body with its parameters filled)
    template: str | None = None
    language: str | None = None
    parameters: list[str] = field(default_factory=list)
    media_url: str | None = None
    callback_data: str | None = None  # biz_opaque_callback_data, echoed in status webhooks
    error: tuple[int, str] | None = None  # set when the message will fail (e.g. 131047 outside the window)
    received_at: float = field(default_factory=time.time)


@dataclass
class _Template:
    language: str
    body: str


def _error(status: int, code: int, message: str, details: str = "", kind: str = "OAuthException") -> Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": uuid.uuid4().hex[:22]}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return Response(status, json.dumps({"error": error}).encode(), [("Content-Type", "application/json")])


class WhatsAppEmulator(EmulatorBase):
    """WhatsApp Cloud API emulator on 127.0.0.1 (one business phone number)."""

    server_name = "whatsapp-emulator"

    def __init__(
        self,
        *,
        phone_number_id: str = "106540352242922",
        display_phone_number: str = "15550783881",
        access_token: str = "dev-whatsapp-access-token",  # noqa: S107 - a fixed loopback test credential
        app_secret: str = "dev-whatsapp-app-secret-0123456789",  # noqa: S107
        session_window: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.access_token = access_token
        self.app_secret = app_secret
        self.session_window = session_window
        self.messages: list[CloudMessage] = []
        self.lose_answers = 0  # the next N accepted sends close the connection instead of answering (ambiguous)
        self.templates: dict[str, _Template] = {}
        self.sessions: set[str] = set()
        self.posted: list[tuple[str, int, bytes]] = []  # (url, status, body) of webhook deliveries
        self._rejects: dict[str, tuple[int, str]] = {}
        self._data_lock = threading.RLock()
        super().__init__(host=host, port=port)

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/v21.0"

    # ------------------------------------------------------------------ config
    def add_template(self, name: str, body: str, language: str = "en_US") -> None:
        self.templates[name] = _Template(language, body)

    def open_session(self, number: str) -> None:
        """The contact wrote to us: free-form messages to them are allowed (the 24-hour window)."""
        self.sessions.add(number.lstrip("+"))

    def reject(self, number: str, code: int, message: str) -> None:
        """Answer sends to ``number`` with a Graph API error ``code`` (e.g. 131030 not in the allowed list)."""
        with self._data_lock:
            self._rejects[number.lstrip("+")] = (code, message)

    def clear_rejects(self) -> None:
        with self._data_lock:
            self._rejects.clear()

    # ------------------------------------------------------------------ API
    def _route(self, request: Incoming) -> Response:
        if request.method == "GET" and request.path.rstrip("/").endswith(f"/{self.phone_number_id}"):
            return self._phone_number(request)  # what ``channel doctor`` reads
        match = _MESSAGES.match(request.path)
        if request.method != "POST" or match is None:
            return _error(400, 100, "Unsupported request - method type or path", kind="GraphMethodException")
        if request.header("authorization") != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if match.group("phone") != self.phone_number_id:
            return _error(400, 100, f"Unsupported post request. Object with ID '{match.group('phone')}' does not exist")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, 100, "(#100) Invalid parameter", "the body is not JSON")
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return _error(400, 100, "(#100) The parameter messaging_product is required.")
        to = str(body.get("to") or "")
        if not _WA_NUMBER.match(to):
            return _error(400, 131009, "(#131009) Parameter value is not valid", "to is not a phone number")
        with self._data_lock:
            rejected = self._rejects.get(to.lstrip("+"))
        if rejected is not None:
            return _error(400, rejected[0], f"(#{rejected[0]}) {rejected[1]}", rejected[1])
        message, problem = self._message(body, to.lstrip("+"))
        if problem is not None:
            return problem
        assert message is not None
        with self._data_lock:
            self.messages.append(message)
            if self.lose_answers > 0:  # accepted, but the answer is lost (an ambiguous send)
                self.lose_answers -= 1
                raise DropConnection
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": message.to}],
            "messages": [{"id": message.id, **({"message_status": "accepted"} if message.template else {})}],
        }
        return Response(200, json.dumps(answer).encode(), [("Content-Type", "application/json")])

    def _phone_number(self, request: Incoming) -> Response:
        if request.header("authorization") != f"Bearer {self.access_token}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        digits = self.display_phone_number
        body = {"display_phone_number": f"+{digits}", "verified_name": "Contoso", "id": self.phone_number_id}
        return Response(200, json.dumps(body).encode(), [("Content-Type", "application/json")])

    def _message(self, body: dict[str, Any], to: str) -> tuple[CloudMessage | None, Response | None]:
        kind = body.get("type", "text")
        new = CloudMessage(id=f"wamid.{uuid.uuid4().hex.upper()}", to=to, type=str(kind), text="")
        new.callback_data = body.get("biz_opaque_callback_data")
        if kind == "template":
            return self._template(body.get("template"), new)
        if kind == "text" and isinstance(body.get("text"), dict) and body["text"].get("body"):
            new.text = str(body["text"]["body"])
        elif kind == "image" and isinstance(body.get("image"), dict) and body["image"].get("link"):
            new.media_url, new.text = str(body["image"]["link"]), str(body["image"].get("caption") or "")
        else:
            return None, _error(400, 131008, "(#131008) Required parameter is missing", f"{kind} needs its object")
        if self.session_window and to not in self.sessions:
            new.error = (131047, "Re-engagement message")
        return new, None

    def _template(self, spec: Any, new: CloudMessage) -> tuple[CloudMessage | None, Response | None]:
        if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("language"), dict):
            return None, _error(400, 131008, "(#131008) Required parameter is missing", "template name and language")
        name, language = str(spec["name"]), str(spec["language"].get("code", ""))
        template = self.templates.get(name)
        if template is None or template.language != language:
            return None, _error(400, 132001, "(#132001) Template name does not exist in the translation")
        values: dict[str, str] = {}
        positional: list[str] = []
        for component in spec.get("components") or []:
            for parameter in component.get("parameters") or []:
                if component.get("type") == "header" and parameter.get("type") == "image":
                    new.media_url = str(parameter["image"]["link"])
                elif component.get("type") == "body" and parameter.get("type") == "text":
                    text = str(parameter.get("text") or "")
                    if not text.strip():
                        return None, _error(400, 131009, "(#131009) Parameter value is not valid", "empty text")
                    positional.append(text)
                    values[str(parameter.get("parameter_name") or len(positional))] = text
        names = _VARIABLE.findall(template.body)
        if len(set(names)) != len(positional) or any(n not in values for n in names):
            return None, _error(400, 132000, "(#132000) Number of parameters does not match the expected number")
        new.template, new.language, new.parameters = name, language, positional
        new.text = _VARIABLE.sub(lambda m: values[m.group(1)], template.body)
        return new, None

    # ------------------------------------------------------------------ webhooks
    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        metadata = {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id}
        change = {"value": {"messaging_product": "whatsapp", "metadata": metadata, **value}, "field": "messages"}
        return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [change]}]}

    def status_payload(self, message: CloudMessage, status: str) -> dict[str, Any]:
        """A status notification; a message bound to fail (``error``) reports ``failed`` with its error."""
        if message.error is not None:
            status = "failed"
        item: dict[str, Any] = {
            "id": message.id,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": message.to,
        }
        if message.callback_data:
            item["biz_opaque_callback_data"] = message.callback_data
        if status == "failed":
            code, title = message.error or (131026, "Message undeliverable")
            item["errors"] = [{"code": code, "title": title, "error_data": {"details": title}}]
        return self._envelope({"statuses": [item]})

    def _inbound(self, sender: str, kind: str, body: dict[str, Any], message_id: str | None) -> dict[str, Any]:
        wa_id = sender.lstrip("+")
        message = {"from": wa_id, "id": message_id or f"wamid.{uuid.uuid4().hex.upper()}", "type": kind, **body}
        message["timestamp"] = str(int(time.time()))
        self.open_session(wa_id)
        contacts = [{"profile": {"name": "Demo User"}, "wa_id": wa_id}]
        return self._envelope({"contacts": contacts, "messages": [message]})

    def text_payload(self, sender: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        return self._inbound(sender, "text", {"text": {"body": text}}, message_id)

    def button_payload(self, sender: str, payload: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        """A tap on a template's quick-reply button."""
        return self._inbound(sender, "button", {"button": {"payload": payload, "text": text}}, message_id)

    def interactive_payload(
        self, sender: str, reply_id: str, title: str, *, kind: str = "button_reply", message_id: str | None = None
    ) -> dict[str, Any]:
        """A reply button (``button_reply``) or list row (``list_reply``) of an interactive message."""
        body = {"interactive": {"type": kind, kind: {"id": reply_id, "title": title}}}
        return self._inbound(sender, "interactive", body, message_id)

    def signed_headers(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": hub_signature(self.app_secret if secret is None else secret, body),
        }

    def post_webhook(
        self, url: str, payload: dict[str, Any], *, sign: bool = True, secret: str | None = None
    ) -> tuple[int, bytes]:
        """POST a notification to ``url`` (loopback only), signed unless ``sign=False``."""
        body = json.dumps(payload).encode()
        headers = self.signed_headers(body, secret) if sign else {"Content-Type": "application/json"}
        return self._call(url, body, headers, "POST")

    def verify_subscription(self, url: str, verify_token: str, challenge: str = "1158201444") -> tuple[int, bytes]:
        """The GET handshake Meta performs when the webhook URL is saved in the app dashboard."""
        query = urlencode({"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge})
        return self._call(f"{url}?{query}", None, {}, "GET")

    def _call(self, url: str, body: bytes | None, headers: dict[str, str], method: str) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"refusing to call a non-loopback URL {url!r}")
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - checked above
                status, text = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, text = int(exc.code), exc.read()
        with self._data_lock:
            self.posted.append((url, status, body or b""))
        return status, text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback WhatsApp Cloud API emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--phone-number-id", default="106540352242922")
    parser.add_argument("--access-token", default="dev-whatsapp-access-token")
    args = parser.parse_args(argv)
    emulator = WhatsAppEmulator(
        phone_number_id=args.phone_number_id, access_token=args.access_token, host=args.host, port=args.port
    )
    return serve_forever(emulator, [f"api base url: {emulator.api_base_url}"])


if __name__ == "__main__":
    raise SystemExit(main())
