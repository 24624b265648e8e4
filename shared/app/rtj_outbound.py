"""Use case: the real-time journeys outbound custom API, relayed by the plug-in (``POST /api/rtj/outbound``).

The relay's credential is checked first (an :class:`shared.adapters.rtj_auth.RtjAuthorizer`), then the ``payload``
is parsed and sent at most once per IdempotencyId/RequestId with the same send-under-lease routine as outbound
marketing. The answer is the API's ``response`` JSON (``Sent`` / ``NotSent`` with a reason), also on a replay.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.app.callbacks import json_error
from shared.app.deps import Deps, RtjDeps
from shared.app.rtj_reconcile import reconcile_relayed
from shared.app.send import claim, send_claimed, send_request
from shared.app.whatsapp_rtj import rtj_message
from shared.domain import rtj_state
from shared.domain.errors import CallbackRejected
from shared.domain.models import HttpReply, InboundHttpRequest
from shared.domain.phone import normalize_e164, strip_channel_prefix
from shared.domain.rtj import NOT_SENT, SENT, InvalidPayload, OutboundPayload, parse_outbound, response_json
from shared.domain.rtj_state import FINAL_RTJ_STATES, RtjState, RtjStatus
from shared.domain.send import RTJ
from shared.log import log_event, mask_phone

MAX_PAYLOAD_BYTES = 64 * 1024
IN_PROGRESS = "a send for this request is in progress; retry later"


def handle_rtj_outbound(deps: Deps, request: InboundHttpRequest) -> HttpReply:
    if deps.rtj is None:
        return json_error(404, "real-time journeys support is not enabled")
    problem = deps.rtj.authorizer.authorize(request)
    if problem is not None:
        return problem
    if len(request.body) > MAX_PAYLOAD_BYTES:
        return json_error(413, "payload too large")
    try:
        definition, request_id, payload = parse_outbound(request.body)
    except CallbackRejected as rejected:
        log_event("rtj.outbound_rejected", logging.WARNING, status=rejected.status, reason=rejected.detail)
        return json_error(rejected.status, rejected.detail)
    if isinstance(payload, InvalidPayload):
        detail = str(payload)
        log_event("rtj.not_sent", logging.WARNING, request_id=request_id, reason="InvalidPayload", detail=detail)
        body = response_json(definition, request_id, NOT_SENT, reason="InvalidPayload", detail=detail)
        return HttpReply(200, body, "application/json")
    return _send(deps, deps.rtj, payload)


def _send(deps: Deps, rtj: RtjDeps, payload: OutboundPayload) -> HttpReply:
    ids: dict[str, Any] = {
        "request_id": payload.request_id,
        "channel_definition_id": payload.channel_definition_id,
        "journey_id": payload.journey_id,
        "test_send": payload.is_test_send or None,
    }
    store = deps.records.rtj
    fresh = rtj_state.new_send(payload, mask_phone(payload.to), deps.org_id)
    record, _ = store.get_or_insert(fresh)
    if record.status is RtjStatus.AMBIGUOUS:  # issue #13: the retry carries what the provider lookup needs
        record = reconcile_relayed(deps, rtj, payload, record)
    if record.status in FINAL_RTJ_STATES:
        log_event("rtj.replayed", status=record.status.value, provider_message_id=record.provider_message_id, **ids)
        return _answer(payload, record)
    now = deps.clock.now()
    if record.status is RtjStatus.SENDING:
        if record.lease_until and record.lease_until > now:
            return json_error(409, IN_PROGRESS)
        record = store.mutate(record.key, rtj_state.ambiguous)
        log_event("rtj.ambiguous", logging.ERROR, **ids)
        return _answer(payload, record)

    phone = normalize_e164(strip_channel_prefix(payload.to), rtj.config.default_country_code)
    try:
        text, content = rtj_message(payload)  # issue #17: WhatsApp template parts next to text
    except InvalidPayload as why:
        return _not_sent(deps, payload, "InvalidMessage", str(why), ids)
    if phone is None:
        return _not_sent(deps, payload, "InvalidRecipient", "To is not an E.164 phone number", ids)
    if not text.strip() and (content is None or content.template is None):
        return _not_sent(deps, payload, "InvalidMessage", "the text part is empty", ids)

    provider = deps.provider
    lease = now + rtj.config.send_lease
    claimed = claim(store, RTJ, record.key, provider=provider.name, lease_until=lease, phone_masked=mask_phone(phone))
    if claimed is None:
        return json_error(409, IN_PROGRESS)
    send = send_request(record.key, phone, text, rtj.config.callback_url, payload.sender, content=content)
    log_event("rtj.send", provider=provider.name, phone=mask_phone(phone), **ids)
    attempt = send_claimed(store, RTJ, provider, record.key, send)
    if attempt.result is not None:
        message_id = attempt.result.provider_message_id
        deps.records.indexes.index_message(provider.name, message_id, record.key)
        if payload.sender:
            deps.records.indexes.index_sender(payload.sender, payload.channel_definition_id, payload.to)
        log_event("rtj.sent", provider_message_id=message_id, **ids)
    elif attempt.rejected is not None:
        log_event("rtj.not_sent", logging.WARNING, reason=attempt.rejected.code, **ids)
    elif attempt.kind == "released":
        log_event("rtj.transient", logging.WARNING, reason=attempt.detail, **ids)
        return json_error(503, "the provider is unavailable; retry later")
    else:
        log_event("rtj.ambiguous", logging.ERROR, reason=attempt.detail, **ids)
    return _answer(payload, attempt.record)


def _not_sent(deps: Deps, payload: OutboundPayload, reason: str, detail: str, ids: dict[str, Any]) -> HttpReply:
    record = deps.records.rtj.mutate(payload.key, lambda r: rtj_state.not_sent(r, reason, detail))
    log_event("rtj.not_sent", logging.WARNING, reason=reason, **ids)
    return _answer(payload, record)


def _answer(payload: OutboundPayload, record: RtjState) -> HttpReply:
    if record.status is RtjStatus.SENT:
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
    return HttpReply(200, body, "application/json")
