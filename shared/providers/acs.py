"""Azure Communication Services SMS (``CHANNEL_PROVIDER=acs``).

Send: the official ``azure-communication-sms`` SDK (``SmsClient.send``: ``POST {endpoint}/sms?api-version=2021-03-07``)
with ``enable_delivery_report=True`` and ``tag=<activity row id>``, authenticated with the resource's access key
(HMAC-SHA256) or, without a key, with the app's Entra ID credential (managed identity in Azure). The SDK is
imported on the first send only (cold start).

Callbacks: delivery reports (``Microsoft.Communication.SMSDeliveryReportReceived``) and replies
(``Microsoft.Communication.SMSReceived``) arrive from an Event Grid webhook subscription on ``/api/callbacks/acs``
with ACS_EVENTGRID_SECRET in the ``X-Channel-Secret`` header (``?secret=`` still accepted), in the Event Grid or the
CloudEvents 1.0 schema (see :mod:`shared.providers.eventgrid`). Event Grid signs nothing, so that secret is the
authentication; it is checked before anything else is read, including the validation handshakes.

Repeatability (issue #13): ``SmsClient.send`` of SDK 1.1.0 puts a fresh ``uuid4`` and the current time into every
recipient's ``repeatabilityRequestId`` / ``repeatabilityFirstSent`` and takes no argument to choose them, so a
rescheduled attempt of ours would be a new request to ACS. We therefore build the ``SendMessageRequest`` ourselves and
send it through the SDK client's own generated operation (``_sms_service_client.sms.send``): same pipeline,
authentication (HMAC or Entra ID), retry policy and transport as ``SmsClient.send``, but with
``repeatabilityRequestId`` derived from the activity and its repeatable series
(:func:`shared.domain.reconcile.repeatability_id`) and ``repeatabilityFirstSent`` = the series' first attempt
(RFC 1123, IMF-fixdate). ACS answers a replay inside its tracked duration (5 minutes) with the original result and
sends nothing new, which is how an ambiguous ACS send is reconciled (:meth:`AcsProvider.lookup` answers ``replay``);
a replay outside the window is refused with 412, mapped to *ambiguous*, never to a fresh send.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.domain import reconcile
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
from shared.domain.reconcile import Lookup, SentQuery
from shared.log import log_event, scrub
from shared.providers import eventgrid
from shared.urls import is_loopback_host

NAME = "acs"
DELIVERY_REPORT = "microsoft.communication.smsdeliveryreportreceived"
SMS_RECEIVED = "microsoft.communication.smsreceived"
STATUS_MAP = {"delivered": StatusKind.DELIVERED, "failed": StatusKind.FAILED}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_OPTED_OUT = re.compile(r"opt(ed)?[\s_-]?out", re.IGNORECASE)


def e164(value: str) -> str:
    """Event Grid samples give numbers as ``15555555555`` (no ``+``): make them E.164 again."""
    value = value.strip()
    return "+" + value if value.isdigit() else value


def _is_loopback_http(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


REPLAY_WINDOW = timedelta(minutes=5)  # ACS tracks repeatable requests this long (learn.microsoft.com, OASIS)
REPLAY_MARGIN = timedelta(seconds=60)  # clock skew and the request's own duration


class AcsProvider:
    name = NAME
    replay_window: timedelta | None = REPLAY_WINDOW

    def __init__(
        self,
        *,
        endpoint: str,
        sender: str,
        eventgrid_secret: str,
        access_key: str | None = None,
        credential: Any = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not access_key and credential is None:
            raise ValueError("ACS needs an access key or a token credential")
        self._endpoint = endpoint.rstrip("/")
        self._from = sender
        self._secret = eventgrid_secret
        self._access_key = access_key
        self._credential = credential
        self._session = session
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    # --- send --------------------------------------------------------------------------------------
    def _sms_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        from azure.communication.sms import SmsClient
        from azure.core.credentials import AzureKeyCredential
        from azure.core.pipeline.transport import RequestsTransport

        credential = AzureKeyCredential(self._access_key) if self._access_key else self._credential
        options: dict[str, Any] = {
            "transport": RequestsTransport(
                session=self._session or requests.Session(),
                session_owner=self._session is None,
                connection_timeout=3.05,
                read_timeout=self._timeout,
            ),
            # no pipeline retries: send() replays once itself after a read error (same repeatabilityRequestId)
            "retry_policy": _no_retry_policy(),
        }
        if not self._access_key and _is_loopback_http(self._endpoint):
            options["per_call_policies"] = [_allow_plain_http_bearer()]  # loopback emulator only
        return SmsClient(self._endpoint, credential, **options)

    def send(self, request: SendRequest) -> SendResult:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        request = replace(request, first_sent=request.first_sent or datetime.now(UTC))  # one series per call
        replayed = False
        try:
            try:
                results = self._send_repeatable(request)
            except ServiceResponseError:
                # The request left and no answer came. Replay it once with the same repeatability id: ACS answers
                # with the original result if it took it, or executes it now. After this, any failure is
                # ambiguous: the first request may have been taken (issue #13 found the SDK's in-call retry
                # turning "timeout, then 500" into a retry-safe failure and a duplicate SMS).
                replayed = True
                results = self._send_repeatable(request)
        except ServiceRequestError as exc:  # the request never left: nothing can have been sent
            if replayed:
                raise _ambiguous(f"ACS did not answer, and its replay failed: {exc.__class__.__name__}") from None
            raise SendFailedTransient(f"ACS unreachable: {exc.__class__.__name__}", retry_safe=True) from None
        except ServiceResponseError as exc:  # sent, no answer, twice: reconciled by a later replay
            raise _ambiguous(f"ACS did not answer: {exc.__class__.__name__}") from None
        except ClientAuthenticationError as exc:
            status = getattr(exc, "status_code", None)
            if replayed:
                raise _ambiguous(f"ACS did not answer, and its replay was refused ({status})") from None
            raise SendFailedTransient(
                f"ACS authentication failed ({status or 'no token'}): {_reason(exc)}", retry_safe=True
            ) from None
        except HttpResponseError as exc:
            error = _http_error(exc)
            raise (
                _ambiguous(f"ACS did not answer, and its replay failed: {error.detail}") if replayed else error
            ) from None
        if not results:
            raise SendFailedTransient("ACS answered 202 without a result for the recipient", retry_safe=False)
        try:
            return _recipient_result(results[0])
        except SendFailedTransient as error:
            raise (_ambiguous(f"after a replay: {error.detail}") if replayed else error) from None

    def _send_repeatable(self, request: SendRequest) -> list[Any]:
        """``SmsClient.send`` with our own repeatability fields (see the module docstring for why)."""
        from azure.communication.sms._generated.models import SendMessageRequest, SmsRecipient, SmsSendOptions

        first_sent = request.first_sent or datetime.now(UTC)  # send() always sets it
        recipient = SmsRecipient(
            to=request.to,
            repeatability_request_id=reconcile.repeatability_id(request.idempotency_key, first_sent),
            repeatability_first_sent=format_datetime(first_sent.astimezone(UTC), usegmt=True),
        )
        body = SendMessageRequest(
            from_property=request.sender or self._from,
            sms_recipients=[recipient],
            message=request.body,
            sms_send_options=SmsSendOptions(enable_delivery_report=True, tag=request.activity_row_id),
        )
        generated = self._sms_client()._sms_service_client.sms  # the SDK's pipeline, auth and retry policy
        return list(generated.send(body, cls=lambda _pipeline, result, _headers: list(result.value)))

    # --- reconciliation (docs/reconciliation.md) ----------------------------------------------------
    def lookup(self, query: SentQuery) -> Lookup:
        """ACS has no message list; it deduplicates a replay inside its tracked window instead."""
        if query.first_sent is None:
            return reconcile.unknown("no first attempt recorded: a replay could not carry repeatabilityFirstSent")
        if query.asked_at - query.first_sent > REPLAY_WINDOW - REPLAY_MARGIN:
            return reconcile.unknown(
                "outside the ACS repeatability window: only a delivery report can resolve it", final=True
            )
        return reconcile.replay("ACS answers a replay with the same repeatability id from its own record")

    # --- callbacks ---------------------------------------------------------------------------------
    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        # A wrong secret (403) or none configured (503) refuses everything at once. A request with NO secret may
        # still be a subscription handshake: Microsoft does not document whether Event Grid sends the static
        # delivery attribute on the validation request, and answering a handshake only proves the endpoint exists
        # (it grants nothing: every event still needs the secret). See docs/security.md.
        missing = eventgrid.secret_missing(request, self._secret)
        method = request.method.upper()
        if method == "OPTIONS":
            return ProviderCallback(events=[], reply=eventgrid.options_handshake(request))
        if method != "POST":
            raise missing or CallbackRejected(405, "Event Grid delivers events with POST")
        grid_events = eventgrid.parse_events(request.body)
        validation = eventgrid.validation_reply(grid_events)
        if validation is not None:
            log_event("callback.eventgrid_validation", provider=NAME, secret_sent=missing is None)
            return ProviderCallback(events=[], reply=validation)
        if missing is not None:
            raise missing
        events: list[ProviderEvent] = []
        for grid_event in grid_events:
            event = self._event(grid_event)
            if event is not None:
                events.append(event)
        return ProviderCallback(events=events, reply=HttpReply(200))

    def _event(self, grid_event: eventgrid.GridEvent) -> ProviderEvent | None:
        data = grid_event.data
        kind = grid_event.type.lower()
        message_id = eventgrid.text_field(data, "messageId")
        if kind == DELIVERY_REPORT:
            status = (eventgrid.text_field(data, "deliveryStatus") or "").strip()
            if not message_id or not status:
                log_event("callback.malformed_event", logging.WARNING, provider=NAME, event_id=grid_event.id)
                return None
            details = eventgrid.text_field(data, "deliveryStatusDetails")
            detail = scrub(details)[:300] if details else None
            tag = (eventgrid.text_field(data, "tag") or "").strip()
            if status.lower() == "failed":
                log_event("acs.delivery_failed", provider_message_id=message_id, detail=detail)
            return StatusEvent(
                provider_message_id=message_id,
                kind=STATUS_MAP.get(status.lower(), StatusKind.IGNORED),
                raw_status=status.lower(),
                activity_hint=tag.lower() if _GUID.match(tag) else None,
                detail=detail,
                event_id=grid_event.id or f"{message_id}:{status.lower()}",
            )
        if kind == SMS_RECEIVED:
            sender = eventgrid.text_field(data, "from")
            recipient = eventgrid.text_field(data, "to")
            text = eventgrid.text_field(data, "message")
            if not message_id or not sender or not recipient or text is None:
                log_event("callback.malformed_event", logging.WARNING, provider=NAME, event_id=grid_event.id)
                return None
            return InboundEvent(
                provider_message_id=message_id,
                sender=e164(sender),
                recipient=e164(recipient),
                text=text,
                event_id=grid_event.id or message_id,
            )
        log_event("callback.event_ignored", provider=NAME, event_type=grid_event.type[:80], event_id=grid_event.id)
        return None


def _no_retry_policy() -> Any:
    """No retries inside the pipeline: after a read error :meth:`AcsProvider.send` replays the request itself (same
    repeatability id), so that it knows a replay happened and never takes a later failure as retry-safe."""
    from azure.core.pipeline.policies import RetryPolicy

    return RetryPolicy(retry_total=0)


def _ambiguous(detail: str) -> SendFailedTransient:
    return SendFailedTransient(f"{detail}; the message may have been accepted", retry_safe=False)


def _allow_plain_http_bearer() -> Any:
    """azure-core refuses bearer tokens over http; the loopback emulator is http. Never used for real endpoints."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class AllowPlainHttpBearer(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            request.context["enforce_https"] = False

    return AllowPlainHttpBearer()


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return scrub(str(message).replace("\n", " "))[:300]


def _http_error(exc: Any) -> SendFailedTransient:
    status = getattr(exc, "status_code", None) or 0
    if status == 429:
        retry_after = None
        response = getattr(exc, "response", None)
        header = response.headers.get("Retry-After") if response is not None else None
        try:
            retry_after = float(header) if header else None
        except ValueError:
            retry_after = None
        return SendFailedTransient("ACS throttled the request (429)", retry_safe=True, retry_after=retry_after)
    if status == 504:
        return SendFailedTransient("ACS gateway timeout: the message may have been accepted", retry_safe=False)
    if status == 409:  # a replay while the original request is still in progress (repeatable requests)
        return SendFailedTransient("ACS: the original request is still in progress (409)", retry_safe=False)
    if status == 412:  # a replay outside the repeatability window: ACS will not say whether it has the message
        return SendFailedTransient("ACS refused the replay (412: outside the repeatability window)", retry_safe=False)
    if status >= 500:
        return SendFailedTransient(f"ACS HTTP {status}", retry_safe=True)
    # 401/403 (key, role assignment), 400 for the whole request (sender not on the resource, bad body), 404:
    # our configuration, not the contact. Retry later; the message reaches the poison queue if it is never fixed.
    return SendFailedTransient(f"ACS refused the request: HTTP {status} {_reason(exc)}", retry_safe=True)


def _recipient_result(result: Any) -> SendResult:
    status = int(getattr(result, "http_status_code", 0) or 0)
    if status in (409, 412):  # this recipient's replay: still in progress, or outside the repeatability window
        raise SendFailedTransient("ACS refused the replay (412: outside the repeatability window)", retry_safe=False)
    message_id = getattr(result, "message_id", None)
    if getattr(result, "successful", False) and message_id:
        return SendResult(provider_message_id=str(message_id), status=str(status or "accepted"))
    error = scrub(str(getattr(result, "error_message", None) or "rejected"))[:300]
    if status == 429:
        raise SendFailedTransient(f"ACS throttled this recipient: {error}", retry_safe=True)
    if status >= 500:
        raise SendFailedTransient(f"ACS could not take this recipient (HTTP {status}): {error}", retry_safe=True)
    # 400 (invalid or unreachable number) and the other per-recipient 4xx are about this contact: permanent.
    raise SendRejected(str(status or 400), error, opted_out=bool(_OPTED_OUT.search(error)))
