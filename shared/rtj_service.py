"""Real-time journeys use cases, on the same providers, callbacks, state store and Dataverse client.

- :meth:`RtjService.handle_outbound`: the relayed outbound custom API ``payload`` → one provider send → the
  ``response`` JSON (``Sent``/``NotSent``), idempotent on IdempotencyId/RequestId.
- :meth:`RtjService.apply_status`: a provider delivery report for such a send → one
  ``msdyn_D365ChannelsNotification`` (``Delivered``/``NotDelivered``).
- :meth:`RtjService.apply_inbound`: a reply to a real-time journeys sender → one ``msdyn_D365ChannelsInbound``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from shared.adapters.rtj_auth import RtjAuthorizer
from shared.domain.due import add_items
from shared.domain.errors import CallbackRejected, SendFailedTransient, SendRejected
from shared.domain.models import HttpReply, InboundEvent, InboundHttpRequest, SendRequest, StatusEvent, StatusKind
from shared.domain.phone import normalize_e164
from shared.domain.rtj import (
    DELIVERED,
    NOT_DELIVERED,
    NOT_SENT,
    SENT,
    InvalidPayload,
    OutboundPayload,
    RtjState,
    parse_outbound,
    response_json,
)
from shared.log import log_event, mask_phone
from shared.ports import Clock, Provider
from shared.reporting import report_due
from shared.repository import RtjRepository

MAX_PAYLOAD_BYTES = 64 * 1024


class RtjDataverse(Protocol):
    def organization_id(self) -> str: ...

    def channels_notification(self, payload: Mapping[str, Any]) -> None: ...

    def channels_inbound(self, payload: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class RtjConfig:
    callback_url: str
    default_country_code: str | None
    send_lease: timedelta


@dataclass(frozen=True)
class RtjOutcome:
    result: str
    key: str | None = None


def _reply(status: int, body: bytes, content_type: str = "application/json") -> HttpReply:
    return HttpReply(status, body, content_type)


def _error(status: int, message: str) -> HttpReply:
    return _reply(status, json.dumps({"error": message}).encode())


class RtjService:
    def __init__(
        self,
        config: RtjConfig,
        dataverse: RtjDataverse,
        provider: Provider,
        records: RtjRepository,
        clock: Clock,
        authorizer: RtjAuthorizer,
    ) -> None:
        self.config = config
        self.authorizer = authorizer
        self.dataverse = dataverse
        self.provider = provider
        self.records = records
        self.clock = clock

    # ================================================================================================
    # Outbound
    # ================================================================================================
    def handle_outbound(self, request: InboundHttpRequest) -> HttpReply:
        problem = self.authorizer.authorize(request)
        if problem is not None:
            return problem
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return _error(413, "payload too large")
        try:
            definition, request_id, payload = parse_outbound(request.body)
        except CallbackRejected as rejected:
            log_event("rtj.outbound_rejected", logging.WARNING, status=rejected.status, reason=rejected.detail)
            return _error(rejected.status, rejected.detail)
        if isinstance(payload, InvalidPayload):
            log_event(
                "rtj.not_sent", logging.WARNING, request_id=request_id, reason="InvalidPayload", detail=str(payload)
            )
            return _reply(
                200, response_json(definition, request_id, NOT_SENT, reason="InvalidPayload", detail=str(payload))
            )
        return self._send(payload)

    def _send(self, payload: OutboundPayload) -> HttpReply:
        ids = {
            "request_id": payload.request_id,
            "channel_definition_id": payload.channel_definition_id,
            "journey_id": payload.journey_id,
            "test_send": payload.is_test_send or None,
        }
        record = self.records.get_or_create(
            RtjState(
                key=payload.key,
                channel_definition_id=payload.channel_definition_id,
                request_id=payload.request_id,
                idempotency_id=payload.idempotency_id,
                sender=payload.sender,
                to_masked=mask_phone(payload.to),
                journey_id=payload.journey_id,
                is_test_send=payload.is_test_send,
            )
        )
        if record.status in ("sent", "notsent", "ambiguous"):
            log_event("rtj.replayed", status=record.status, provider_message_id=record.provider_message_id, **ids)
            return self._answer(payload, record)
        now = self.clock.now()
        if record.status == "sending":
            if record.lease_until and record.lease_until > now:
                return _error(409, "a send for this request is in progress; retry later")
            record = self.records.mutate(
                record.key,
                lambda r: (
                    replace(
                        r,
                        status="ambiguous",
                        lease_until=None,
                        reason="Ambiguous",
                        detail="the provider may have the message; it is not sent again to avoid a duplicate",
                    )
                    if r.status == "sending"
                    else None
                ),
            )
            log_event("rtj.ambiguous", logging.ERROR, **ids)
            return self._answer(payload, record)

        phone = normalize_e164(payload.to.removeprefix("whatsapp:"), self.config.default_country_code)
        try:
            text = payload.text()
        except InvalidPayload as why:
            return self._finish_not_sent(payload, "InvalidMessage", str(why), ids)
        if phone is None:
            return self._finish_not_sent(payload, "InvalidRecipient", "To is not an E.164 phone number", ids)
        if not text.strip():
            return self._finish_not_sent(payload, "InvalidMessage", "the text part is empty", ids)

        lease = now + self.config.send_lease
        record = self.records.mutate(
            record.key,
            lambda r: (
                replace(r, status="sending", lease_until=lease, provider=self.provider.name)
                if r.status == "claimed"
                else None
            ),
        )
        if record.status != "sending" or record.lease_until != lease:
            return _error(409, "a send for this request is in progress; retry later")
        sender = payload.sender
        send = SendRequest(
            to=phone,
            body=text,
            activity_row_id=record.key,
            status_callback_url=f"{self.config.callback_url}?activity={record.key}",
            idempotency_key=record.key,
            sender=sender,
        )
        log_event("rtj.send", provider=self.provider.name, phone=mask_phone(phone), **ids)
        try:
            result = self.provider.send(send)
        except SendRejected as rejected:
            return self._finish_not_sent(payload, rejected.code, rejected.detail, ids, from_sending=True)
        except SendFailedTransient as transient:
            if transient.retry_safe:
                self.records.mutate(
                    record.key,
                    lambda r: replace(r, status="claimed", lease_until=None) if r.status == "sending" else None,
                )
                log_event("rtj.transient", logging.WARNING, reason=transient.detail, **ids)
                return _error(503, "the provider is unavailable; retry later")
            detail = transient.detail[:300]
            record = self.records.mutate(
                record.key,
                lambda r: replace(r, status="ambiguous", lease_until=None, reason="Ambiguous", detail=detail),
            )
            log_event("rtj.ambiguous", logging.ERROR, reason=transient.detail, **ids)
            return self._answer(payload, record)
        record = self.records.mutate(
            record.key,
            lambda r: replace(
                r,
                status="sent",
                lease_until=None,
                provider_message_id=r.provider_message_id or result.provider_message_id,
            ),
        )
        self.records.index_message(self.provider.name, result.provider_message_id, record.key)
        if sender:
            self.records.index_sender(sender, payload.channel_definition_id)
        log_event("rtj.sent", provider_message_id=result.provider_message_id, **ids)
        return self._answer(payload, record)

    def _finish_not_sent(
        self, payload: OutboundPayload, reason: str, detail: str, ids: dict[str, Any], *, from_sending: bool = False
    ) -> HttpReply:
        wanted = "sending" if from_sending else "claimed"
        record = self.records.mutate(
            payload.key,
            lambda r: (
                replace(r, status="notsent", lease_until=None, reason=reason, detail=detail[:300])
                if r.status == wanted
                else None
            ),
        )
        log_event("rtj.not_sent", logging.WARNING, reason=reason, **ids)
        return self._answer(payload, record)

    def _answer(self, payload: OutboundPayload, record: RtjState) -> HttpReply:
        if record.status == "sent":
            body = response_json(payload.channel_definition_id, payload.request_id, SENT, record.provider_message_id)
        else:
            body = response_json(
                payload.channel_definition_id,
                payload.request_id,
                NOT_SENT,
                record.provider_message_id,
                reason=record.reason,
                detail=record.detail,
            )
        return _reply(200, body)

    # ================================================================================================
    # Delivery reports
    # ================================================================================================
    def apply_status(self, provider_name: str, event: StatusEvent, key: str) -> RtjOutcome:
        record = self.records.get(key)
        if record is None:
            log_event("callback.unknown_message", provider=provider_name, provider_message_id=event.provider_message_id)
            return RtjOutcome("unknown")
        if record.provider_message_id and record.provider_message_id != event.provider_message_id:
            log_event(
                "callback.mismatch",
                logging.WARNING,
                provider_message_id=event.provider_message_id,
                request_id=record.request_id,
            )
            return RtjOutcome("mismatch", key)
        if event.kind in (StatusKind.DELIVERED, StatusKind.OPENED):
            item = DELIVERED
        elif event.kind is StatusKind.FAILED:
            item = f"{NOT_DELIVERED}:{event.error_code or event.raw_status}"
        else:
            return RtjOutcome("ignored", key)

        def change(r: RtjState) -> RtjState | None:
            if any(k.split(":")[0] in (DELIVERED, NOT_DELIVERED) for k in (*r.due, *r.recorded)):
                return None  # one final report per message; statuses never go backwards
            base = (
                r if r.provider_message_id else replace(r, status="sent", provider_message_id=event.provider_message_id)
            )
            return add_items(base, item)

        record = self.records.mutate(key, change)
        log_event(
            "rtj.status",
            status=event.raw_status,
            provider_message_id=event.provider_message_id,
            request_id=record.request_id,
        )
        self._flush(record)
        return RtjOutcome("applied", key)

    def _flush(self, record: RtjState) -> RtjState:
        def report(r: RtjState, item: str) -> None:
            status, _, reason = item.partition(":")
            payload: dict[str, Any] = {
                "ChannelDefinitionId": r.channel_definition_id,
                "RequestId": r.request_id,
                "MessageId": r.provider_message_id,
                "From": r.sender,
                "OrganizationId": self.dataverse.organization_id(),
                "Status": status,
            }
            if status == NOT_DELIVERED:
                payload["Details"] = {
                    "Reason": reason or "NotDelivered",
                    "Message": "the provider reported the message as not delivered",
                }
            self.dataverse.channels_notification(payload)

        def reported(r: RtjState, item: str) -> None:
            log_event(
                "rtj.notified",
                status=item.split(":", maxsplit=1)[0],
                provider_message_id=r.provider_message_id,
                request_id=r.request_id,
            )

        return report_due(record, lambda change: self.records.mutate(record.key, change), report, self.clock, reported)

    # ================================================================================================
    # Inbound
    # ================================================================================================
    def apply_inbound(self, provider_name: str, event: InboundEvent) -> RtjOutcome | None:
        """Forward a reply to a real-time journeys sender; None when our number is not one."""
        recipient = event.recipient.removeprefix("whatsapp:")
        channel = self.records.channel_for_sender(recipient)
        if channel is None:
            return None
        definition, sender = channel
        if self.records.inbound_done(provider_name, event.provider_message_id):
            return RtjOutcome("duplicate")
        customer = event.sender.removeprefix("whatsapp:")
        self.dataverse.channels_inbound(
            {
                "ChannelDefinitionId": definition,
                "To": sender,
                "From": normalize_e164(customer, self.config.default_country_code) or customer,
                "OrganizationId": self.dataverse.organization_id(),
                "Message": {"text": event.text},
            }
        )
        self.records.mark_inbound_done(provider_name, event.provider_message_id)
        log_event(
            "rtj.inbound",
            provider_message_id=event.provider_message_id,
            channel_definition_id=definition,
            phone=mask_phone(customer),
        )
        return RtjOutcome("applied")
