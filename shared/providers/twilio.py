"""Twilio Programmable Messaging (SMS and WhatsApp).

Send: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form, HTTP Basic), with a per-message
``StatusCallback`` that carries our activity row id, so a delivery report finds its activity even if the worker
died before writing the provider's message id.
Callbacks: status callbacks and the "A message comes in" webhook arrive on the same route, both signed with
``X-Twilio-Signature`` over the public URL Twilio requested.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qsl

import requests

from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import (
    HttpReply,
    InboundEvent,
    InboundHttpRequest,
    ProviderCallback,
    ProviderEvent,
    SendRequest,
    SendResult,
    StatusEvent,
    StatusKind,
)
from shared.domain.phone import as_whatsapp, is_whatsapp
from shared.domain.reconcile import Lookup, SentQuery
from shared.domain.whatsapp import TemplateMessage, button_keyword, is_opt_out_payload, parse_opt_out_payloads
from shared.log import scrub
from shared.providers import twilio_lookup, twilio_signature

NAME = "twilio"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_CALLBACK_BYTES = 64 * 1024

STATUS_MAP = {
    "delivered": StatusKind.DELIVERED,
    "undelivered": StatusKind.FAILED,
    "failed": StatusKind.FAILED,
    "read": StatusKind.OPENED,
    "sent": StatusKind.SENT,
}

# 4xx error codes that are about this recipient / this message: retrying can never succeed.
RECIPIENT_ERRORS = {
    "21211": "invalid 'To' number",
    "21214": "'To' number cannot be reached",
    "21408": "no permission to send to this region",
    "21610": "recipient has opted out (replied STOP)",
    "21612": "cannot route to this number",
    "21614": "'To' number is not a mobile number",
    "21617": "message body too long",
    "63016": "WhatsApp: outside the 24-hour session window (use a template)",
    "63024": "WhatsApp: invalid recipient",
}
OPTED_OUT_CODE = "21610"
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
DEFAULT_OPT_OUT_PAYLOADS = parse_opt_out_payloads("stop,unsubscribe")
# Throttling (20429 Too Many Requests) and queue overflow (30001): the sender is over its rate. Never `failed`:
# released and retried with backoff (the shared send rate, PROVIDER_MAX_PER_SECOND, keeps them rare).
RATE_ERRORS = {"20429": "Twilio throttled the sender", "30001": "Twilio queue overflow"}


def _is_connect_failure(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Failed to establish a new connection" in text


def _content(request: SendRequest) -> dict[str, str]:
    """Body (and MediaUrl), or an approved WhatsApp template: ContentSid + ContentVariables (issue #17)."""
    content = request.content
    template: TemplateMessage | None = content.template if content else None
    if template is None:
        media = {"MediaUrl": content.media_url} if content and content.media_url else {}
        return {"Body": request.body, **media}
    if not _CONTENT_SID.match(template.name):
        raise SendRejected("template", "the template is not a Twilio Content SID (HX followed by 32 hex characters)")
    variables = {"ContentVariables": template.variables_json()} if template.variables else {}
    return {"ContentSid": template.name, **variables}


class TwilioProvider:
    name = NAME
    replay_window: timedelta | None = (
        None  # Messages create has no idempotency key: ambiguous sends are looked up in the list
    )

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str | None,
        messaging_service_sid: str | None,
        api_base_url: str,
        callback_url: str,
        session: requests.Session,
        timeout: float = 10.0,
        opt_out_payloads: frozenset[str] = DEFAULT_OPT_OUT_PAYLOADS,
    ) -> None:
        self._api_base_url = api_base_url
        self._sid = account_sid
        self._token = auth_token
        self._from = sender
        self._service = messaging_service_sid
        self._endpoint = f"{api_base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._callback_url = callback_url
        self._session = session
        self._timeout = timeout
        self._opt_out_payloads = opt_out_payloads

    # --- send --------------------------------------------------------------------------------------
    def _addresses(self, to: str, override: str | None) -> tuple[str, str | None]:
        sender = override or self._from
        if is_whatsapp(sender):
            to = as_whatsapp(to)  # a WhatsApp sender writes to the contact's WhatsApp address
        return to, sender

    def send(self, request: SendRequest) -> SendResult:
        to, sender = self._addresses(request.to, request.sender)
        form = {"To": to, "StatusCallback": request.status_callback_url, **_content(request)}
        if request.sender or not self._service:
            form["From"] = sender or ""
        else:
            form["MessagingServiceSid"] = self._service
        try:
            response = self._session.post(
                self._endpoint, data=form, auth=(self._sid, self._token), timeout=(3.05, self._timeout)
            )
        except requests.RequestException as exc:
            raise SendFailedTransient(
                f"Twilio unreachable: {exc.__class__.__name__}", retry_safe=_is_connect_failure(exc)
            ) from None
        return self._result(response)

    def _result(self, response: requests.Response) -> SendResult:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if status in (200, 201) and payload.get("sid"):
            return SendResult(provider_message_id=str(payload["sid"]), status=str(payload.get("status", "")))
        code = str(payload.get("code", ""))
        message = scrub(str(payload.get("message", "")))[:300]
        if status == 429 or code in RATE_ERRORS:
            retry_after = response.headers.get("Retry-After")
            raise SendFailedTransient(
                f"{RATE_ERRORS.get(code, 'Twilio throttled')} ({code})",
                retry_safe=True,
                retry_after=float(retry_after) if retry_after else None,
            )
        if status == 504:
            raise SendFailedTransient("Twilio gateway timeout: the message may have been accepted", retry_safe=False)
        if status >= 500:
            raise SendFailedTransient(f"Twilio HTTP {status}", retry_safe=True)
        if status == 400 and code in RECIPIENT_ERRORS:
            raise SendRejected(code, RECIPIENT_ERRORS[code], opted_out=code == OPTED_OUT_CODE)
        # 401/403/404 and other 400s are about our configuration (credentials, sender), not the contact:
        # keep the message and retry later; it reaches the poison queue with this reason if never fixed.
        raise SendFailedTransient(f"Twilio refused the request: HTTP {status} {code} {message}", retry_safe=True)

    # --- reconciliation (docs/reconciliation.md) ----------------------------------------------------
    def lookup(self, query: SentQuery) -> Lookup:
        to, sender = self._addresses(query.to, query.sender)
        filters = {"To": to}
        if query.sender or not self._service:
            filters["From"] = sender or ""
            check = ("from", sender or "")
        else:  # a messaging service picks the number: match the service instead
            check = ("messaging_service_sid", self._service)
        return twilio_lookup.lookup_message(
            self._session,
            api_base_url=self._api_base_url,
            list_url=self._endpoint,
            auth=(self._sid, self._token),
            filters=filters,
            sender_check=check,
            query=query,
            timeout=self._timeout,
        )

    # --- callbacks ---------------------------------------------------------------------------------
    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        if request.method.upper() != "POST":
            raise CallbackRejected(405, "Twilio callbacks are POST requests")
        if len(request.body) > MAX_CALLBACK_BYTES:
            raise CallbackRejected(413, "callback body too large")
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        url = self._callback_url + (f"?{request.raw_query}" if request.raw_query else "")
        if content_type == "application/x-www-form-urlencoded" or not content_type:
            try:
                params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                raise CallbackRejected(400, "callback body is not UTF-8") from None
        else:
            params = []  # JSON bodies are covered by bodySHA256 in the signed URL
        if not twilio_signature.validate(
            self._token, url, params, request.header("x-twilio-signature"), body=request.body
        ):
            raise CallbackRejected(403, "missing or invalid X-Twilio-Signature")
        if content_type not in ("application/x-www-form-urlencoded", ""):
            raise CallbackRejected(415, "Twilio messaging webhooks are form-encoded")
        form = dict(params)
        if form.get("AccountSid") not in (None, self._sid):
            raise CallbackRejected(403, "callback for another Twilio account")
        sid = form.get("MessageSid") or form.get("SmsSid") or form.get("SmsMessageSid")
        if not sid:
            raise CallbackRejected(400, "callback has no MessageSid")
        events: list[ProviderEvent] = []
        status = (form.get("MessageStatus") or "").lower()
        if status and status != "received":
            events.append(
                StatusEvent(
                    provider_message_id=sid,
                    kind=STATUS_MAP.get(status, StatusKind.IGNORED),
                    raw_status=status,
                    activity_hint=request.query.get("activity"),
                    error_code=form.get("ErrorCode") or None,
                    detail=RECIPIENT_ERRORS.get(form.get("ErrorCode") or ""),  # e.g. 63016: outside the window
                    event_id=f"{sid}:{status}",
                )
            )
        else:
            sender, recipient = form.get("From"), form.get("To")
            if not sender or not recipient or "Body" not in form:
                raise CallbackRejected(400, "inbound message needs From, To and Body")
            payload = form.get("ButtonPayload")  # a WhatsApp quick-reply button tap (issue #17)
            events.append(
                InboundEvent(
                    provider_message_id=sid,
                    sender=sender,
                    recipient=recipient,
                    text=form["Body"],
                    event_id=sid,
                    keyword=button_keyword(payload) if payload else None,
                    opt_out=bool(payload) and is_opt_out_payload(str(payload), self._opt_out_payloads),
                    account=form.get("MessagingServiceSid") or None,  # the pool the number belongs to, if any
                )
            )
        return ProviderCallback(events=events, reply=HttpReply(200, EMPTY_TWIML, "text/xml"))
