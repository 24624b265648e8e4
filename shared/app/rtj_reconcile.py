"""Reconciliation of an ambiguous real-time journeys send, on the relay's retry (issue #13; docs/reconciliation.md).

The relayed request carries the recipient and the text, which the state record does not keep, so a real-time
journeys send is reconciled when the same request (same idempotency key) comes again once the provider's view is
settled: found → ``Sent`` with the provider's message id; absent (or a deduplicated replay) → sent now under a fresh
claim; cannot tell → the answer stays ``NotSent`` / ``Ambiguous``. Before that moment, the answer is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from shared.app.deps import Deps, RtjDeps
from shared.app.send import send_claimed, send_request
from shared.app.whatsapp_rtj import rtj_message
from shared.domain import reconcile, rtj_state
from shared.domain.phone import normalize_e164, strip_channel_prefix
from shared.domain.reconcile import SentQuery
from shared.domain.rtj import InvalidPayload, OutboundPayload
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.send import RTJ
from shared.log import log_event, mask_phone


def reconcile_relayed(deps: Deps, rtj: RtjDeps, payload: OutboundPayload, record: RtjState) -> RtjState:
    """``record`` is ambiguous; the record as it is after asking the provider (unchanged when it is too early)."""
    now, provider, lease = deps.clock.now(), deps.provider, rtj.config.send_lease
    window_end = record.attempt_until or now
    if (
        reconcile.reconcile_at(window_end, deps.config.reconcile_after, provider.replay_window, now, in_flight=False)
        > now
    ):
        return record
    phone = normalize_e164(strip_channel_prefix(payload.to), rtj.config.default_country_code)
    try:
        text, content = rtj_message(payload)  # the same text and template the original attempt sent (issue #17)
    except InvalidPayload:
        return record
    if phone is None or not text.strip():
        return record
    store, key, indexes = deps.records.rtj, record.key, deps.records.indexes
    ids: dict[str, Any] = {"request_id": payload.request_id, "channel_definition_id": payload.channel_definition_id}
    query = SentQuery(
        to=phone,
        body=text,
        sender=payload.sender,
        window_start=reconcile.attempt_start(record.attempt_until, lease) or now - lease,
        window_end=window_end,
        first_sent=reconcile.attempt_start(record.first_attempt_until, lease),
        asked_at=now,
        attributed=lambda sid: (indexes.find_by_message(provider.name, sid) or key) != key,
    )
    found = provider.lookup(query)
    if found.kind == "unknown":
        note = f"unknown: {found.detail}"
        decision = "left_ambiguous" if found.final else "retry"
        log_event("rtj.reconcile_decision", logging.WARNING, decision=decision, reason=found.detail, **ids)
        return store.mutate(key, lambda s: rtj_state.reconcile_deferred(s, note=note))
    if found.kind == "found" and found.message_id:
        message_id, note = found.message_id, f"found: {found.detail}"
        record = store.mutate(
            key, lambda s: rtj_state.reconcile_found(s, provider=provider.name, message_id=message_id, note=note)
        )
        indexes.index_message(provider.name, message_id, key)
        log_event("rtj.reconcile_decision", decision="found", provider_message_id=message_id, **ids)
        return record
    decision = "resent" if found.kind == "absent" else "replayed"
    until, masked = deps.clock.now() + lease, mask_phone(phone)
    note = f"{decision}: {found.detail}"
    claimed = store.mutate(
        key,
        lambda s: rtj_state.reconcile_claim(
            s, provider=provider.name, lease_until=until, phone_masked=masked, note=note
        ),
    )
    if claimed.status is not RtjStatus.SENDING or claimed.lease_until != until:
        return claimed  # another request reconciled it first
    log_event("rtj.reconcile_decision", decision=decision, reason=found.detail, **ids)
    request = send_request(key, phone, text, rtj.config.callback_url, payload.sender, content=content)
    first_sent = reconcile.attempt_start(claimed.first_attempt_until, lease)
    attempt = send_claimed(store, RTJ, provider, key, replace(request, first_sent=first_sent))
    if attempt.result is not None:
        indexes.index_message(provider.name, attempt.result.provider_message_id, key)
    return attempt.record
