"""Meta's WhatsApp Cloud API (``CHANNEL_PROVIDER=whatsapp``, issue #17).

Send: ``POST {WHATSAPP_API_BASE_URL}/{phone-number-id}/messages`` with a bearer token; ``type: template`` (name,
language, body parameters, an optional media header) or ``type: text`` / ``image`` inside the 24-hour window. The
record key rides as ``biz_opaque_callback_data``, which Meta echoes in every status webhook of that message.
Webhooks on ``/api/callbacks/whatsapp``: ``GET`` answers the subscription handshake (``hub.mode=subscribe``,
``hub.verify_token`` compared in constant time, ``hub.challenge`` echoed); ``POST`` must carry a valid
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the app secret), checked before the body is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import requests

from shared.domain import reconcile
from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import HttpReply, InboundHttpRequest, ProviderCallback, SendRequest, SendResult
from shared.domain.phone import strip_channel_prefix
from shared.domain.reconcile import Lookup, SentQuery
from shared.log import scrub
from shared.providers.whatsapp_webhook import parse_webhook

NAME = "whatsapp"
MAX_CALLBACK_BYTES = 256 * 1024
_CHALLENGE = re.compile(r"^[A-Za-z0-9_\-.]{1,256}$")

# Meta error codes (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
TRANSIENT_CODES = {
    1: "API unknown error",
    2: "API service temporarily unavailable",
    4: "application request limit reached",
    17: "user request limit reached",
    80007: "WhatsApp Business Account rate limit hit",
    130429: "Cloud API throughput rate limit hit",
    131000: "something went wrong",
    131016: "service unavailable",
    131048: "spam rate limit hit",
    131056: "too many messages to this number (pair rate limit)",
    133004: "server temporarily unavailable",
}
REJECTED_CODES = {
    131021: "recipient cannot be the sender",
    131026: "message undeliverable (not a WhatsApp user, or cannot receive)",
    131030: "recipient is not in the allowed list (test number)",
    131047: "more than 24 hours since the customer last replied: send an approved template",
    131050: "the user has stopped marketing messages from this business",
    131051: "unsupported message type",
    131052: "media download error",
    131053: "media upload error (unsupported or unreachable media URL)",
    131008: "a required parameter is missing",
    131009: "a parameter value is not valid",
    132000: "template variables do not match the template's parameter count",
    132001: "template does not exist in this language",
    132005: "template text is too long after filling the variables",
    132007: "template format character policy violated",
    132012: "template variable format mismatch",
    132015: "template is paused (low quality)",
    132016: "template is disabled",
    132068: "flow is blocked",
    132069: "flow was throttled",
}
OPTED_OUT_CODES = {131050}


class WhatsAppProvider:
    name = NAME
    replay_window: timedelta | None = None  # the Cloud API has no idempotency key: nothing is replayed

    def __init__(
        self,
        *,
        phone_number_id: str,
        access_token: str,
        app_secret: str,
        verify_token: str,
        api_base_url: str,
        session: requests.Session,
        opt_out_payloads: frozenset[str],
        timeout: float = 10.0,
        also_accept: Callable[[str], bool] | None = None,
    ) -> None:
        self._phone_number_id = phone_number_id
        self._also_accept = also_accept  # multi-org: the registered orgs' number ids on the same Meta app
        self._token = access_token
        self._app_secret = app_secret.encode()
        self._verify_token = verify_token
        self._endpoint = f"{api_base_url.rstrip('/')}/{phone_number_id}/messages"
        self._session = session
        self._opt_out_payloads = opt_out_payloads
        self._timeout = timeout

    # --- send --------------------------------------------------------------------------------------
    def lookup(self, query: SentQuery) -> Lookup:
        """The Cloud API offers no list of sent messages: it cannot tell. An ambiguous send stays ambiguous until its
        status webhook (which echoes the record key in ``biz_opaque_callback_data``) resolves it; never resent."""
        return reconcile.unknown("the WhatsApp Cloud API offers no message lookup", final=True)

    def send(self, request: SendRequest) -> SendResult:
        body = message_body(request)
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        try:
            response = self._session.post(self._endpoint, json=body, headers=headers, timeout=(3.05, self._timeout))
        except requests.RequestException as exc:
            # Only a connection never made proves Meta does not have the message; anything later is ambiguous.
            connect = isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in repr(exc)
            raise SendFailedTransient(f"WhatsApp unreachable: {exc.__class__.__name__}", retry_safe=connect) from None
        return _result(response)

    # --- callbacks ---------------------------------------------------------------------------------
    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        method = request.method.upper()
        if method == "GET":
            return ProviderCallback(events=[], reply=self._handshake(request))
        if method != "POST":
            raise CallbackRejected(405, "WhatsApp webhooks are GET (subscription) or POST (notifications)")
        if len(request.body) > MAX_CALLBACK_BYTES:
            raise CallbackRejected(413, "callback body too large")
        if not self._signed(request):
            raise CallbackRejected(403, "missing or invalid X-Hub-Signature-256")
        events = parse_webhook(request.body, self._phone_number_id, self._opt_out_payloads, self._also_accept)
        return ProviderCallback(events=events, reply=HttpReply(200, b"", "text/plain"))

    def _signed(self, request: InboundHttpRequest) -> bool:
        header = request.header("x-hub-signature-256") or ""
        if not self._app_secret or not header.startswith("sha256="):
            return False
        expected = hmac.new(self._app_secret, request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())

    def _handshake(self, request: InboundHttpRequest) -> HttpReply:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token") or ""
        challenge = request.query.get("hub.challenge") or ""
        if mode != "subscribe":
            raise CallbackRejected(400, "hub.mode must be subscribe")
        if not self._verify_token:
            raise CallbackRejected(503, "WHATSAPP_VERIFY_TOKEN is not set")
        if not hmac.compare_digest(token.encode(), self._verify_token.encode()):
            raise CallbackRejected(403, "hub.verify_token does not match WHATSAPP_VERIFY_TOKEN")
        if not _CHALLENGE.match(challenge):
            raise CallbackRejected(400, "hub.challenge is missing or not a plain token")
        return HttpReply(200, challenge.encode(), "text/plain")


def message_body(request: SendRequest) -> dict[str, Any]:
    """The Cloud API message object: a template when the row names one, else text (or an image with a caption)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": strip_channel_prefix(request.to),
        "biz_opaque_callback_data": request.activity_row_id,
    }
    content = request.content
    template = content.template if content else None
    media = content.media_url if content else None
    if template is not None:
        components: list[dict[str, Any]] = []
        if media:
            components.append({"type": "header", "parameters": [{"type": "image", "image": {"link": media}}]})
        if template.variables:
            named = not template.positional
            parameters = [
                {"type": "text", "text": text, **({"parameter_name": key} if named else {})}
                for key, text in template.variables
            ]
            components.append({"type": "body", "parameters": parameters})
        spec: dict[str, Any] = {"name": template.name, "language": {"code": template.language or "en_US"}}
        if components:
            spec["components"] = components
        return {**body, "type": "template", "template": spec}
    if media:
        return {**body, "type": "image", "image": {"link": media, "caption": request.body}}
    return {**body, "type": "text", "text": {"preview_url": False, "body": request.body}}


def _result(response: requests.Response) -> SendResult:
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    messages = payload.get("messages")
    if status == 200 and isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
        if message_id:
            return SendResult(str(message_id), str(messages[0].get("message_status") or "accepted"))
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = error.get("code")
    code = code if isinstance(code, int) else -1
    text = scrub(str(error.get("message", "")))[:300]
    if code in REJECTED_CODES:
        raise SendRejected(str(code), REJECTED_CODES[code], opted_out=code in OPTED_OUT_CODES)
    if status == 504:
        raise SendFailedTransient("WhatsApp gateway timeout: the message may have been accepted", retry_safe=False)
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        reason = TRANSIENT_CODES.get(code, f"HTTP {status}")
        raise SendFailedTransient(
            f"WhatsApp: {reason} ({code})",
            retry_safe=True,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    # Token (190), permission (10, 200-299), a wrong phone number id (100), account problems: our configuration,
    # not the contact. Keep the message and retry; it reaches the poison queue with this reason if never fixed.
    raise SendFailedTransient(f"WhatsApp refused the request: HTTP {status} code {code} {text}", retry_safe=True)
