"""Use case: apply one provider event (a delivery report or a reply) to the records; the caller reports what is due.

A report is routed on its record key (``shared.domain.rtj.is_rtj_key``): real-time journeys sends go to
:mod:`shared.app.rtj_events`, everything else is an outbound-marketing activity. A reply goes to the real-time
journeys channel that sends from the number it was sent to, and/or becomes a keyword interaction of the most
recent activity sent to that contact (a number serving both contracts gets both).
"""

from __future__ import annotations

import logging

from shared.app import overflow, rtj_events
from shared.app.config import Handled, Outcome, handled
from shared.app.deps import Deps
from shared.app.message import activity_ids, set_opted_out
from shared.app.outbox import Hold, no_hold
from shared.domain import state as machine
from shared.domain.keywords import classify_reply
from shared.domain.models import InboundEvent, ProviderEvent, StatusEvent, StatusKind
from shared.domain.phone import normalize_e164, strip_channel_prefix
from shared.domain.rtj import is_rtj_key
from shared.domain.state import ActivityState
from shared.domain.whatsapp import reply_for
from shared.log import log_event, mask_phone


def apply_event(deps: Deps, provider_name: str, event: ProviderEvent, hold: Hold = no_hold) -> Handled:
    """Raises TransientError / DataverseError when the event must be retried later. ``hold``: the caller's outbox
    takes its reporting lease in the same write that makes items due."""
    if isinstance(event, StatusEvent):
        return apply_status(deps, provider_name, event, hold)
    return apply_inbound(deps, provider_name, event, hold)


def _mismatch(record: ActivityState, event: StatusEvent) -> bool:
    return bool(record.provider_message_id) and record.provider_message_id != event.provider_message_id


def apply_status(deps: Deps, provider_name: str, event: StatusEvent, hold: Hold = no_hold) -> Handled:
    indexes = deps.records.indexes
    key = event.activity_hint or indexes.find_by_message(provider_name, event.provider_message_id)
    if key and is_rtj_key(key) and deps.rtj is not None:
        return rtj_events.apply_status(deps, provider_name, event, key, hold)
    store = deps.records.activities
    record = store.peek(key) if key else None
    if record is None:
        log_event(
            "callback.unknown_message",
            provider=provider_name,
            provider_message_id=event.provider_message_id,
            status=event.raw_status,
        )
        return Handled(Outcome("unknown"))
    ids = activity_ids(record.activity)
    if event.kind is StatusKind.IGNORED and not _mismatch(record, event):
        log_event(
            "callback.status_ignored", status=event.raw_status, provider_message_id=event.provider_message_id, **ids
        )
        return Handled(Outcome("ignored", record.key))
    known_id = record.provider_message_id
    if overflow.is_overflow(provider_name, event):  # issue #14: a queue overflow is transient, never `failed`
        return overflow.send_again_later(deps, record, event)

    def change(s: ActivityState) -> ActivityState | None:
        if _mismatch(s, event):
            return None  # decided again on fresh data: a signed report for one message never steers another
        changed = machine.on_status(s, provider=provider_name, message_id=event.provider_message_id, kind=event.kind)
        return _held(changed, hold)

    record = store.mutate(record.key, change) if not _mismatch(record, event) else record
    if _mismatch(record, event):
        log_event(
            "callback.mismatch",
            logging.WARNING,
            provider_message_id=event.provider_message_id,
            expected=record.provider_message_id,
            **ids,
        )
        return Handled(Outcome("mismatch", record.key))
    log_event(
        "callback.status",
        status=event.raw_status,
        error_code=event.error_code,
        detail=event.detail,
        provider_message_id=event.provider_message_id,
        **ids,
    )
    if record.provider_message_id and not known_id:  # the report resolved an uncertain send: index it now
        indexes.index_message(provider_name, record.provider_message_id, record.key)
    return handled("applied", record)


def apply_inbound(deps: Deps, provider_name: str, event: InboundEvent, hold: Hold = no_hold) -> Handled:
    rtj = rtj_events.apply_inbound(deps, provider_name, event) if deps.rtj is not None else None
    sender = strip_channel_prefix(event.sender)
    phone = normalize_e164(sender, deps.config.default_country_code) or sender
    found = deps.records.indexes.find_by_phone(phone)
    if found is None or deps.clock.now() - found[1] > deps.config.reply_window:
        if rtj is not None:
            return rtj
        log_event("reply.unmatched", phone=mask_phone(phone), provider_message_id=event.provider_message_id)
        return Handled(Outcome("unmatched"))
    store = deps.records.activities
    record = store.peek(found[0])
    if record is None:
        return Handled(Outcome("unmatched"))
    ids = activity_ids(record.activity)
    reply = classify_reply(event.text, deps.config.opt_out_words)
    reply = reply_for(reply, event.keyword, event.opt_out)  # issue #17: a WhatsApp button's payload is the keyword
    if reply.opt_out:
        set_opted_out(deps, record.activity, "contact replied with an opt-out word")
    if not reply.keyword:
        log_event("reply.empty", provider_message_id=event.provider_message_id, **ids)
        return Handled(Outcome("empty", record.key))
    keyword = reply.keyword
    record = store.mutate(record.key, lambda s: _held(machine.on_keyword(s, keyword), hold))
    log_event("reply.matched", opt_out=reply.opt_out, provider_message_id=event.provider_message_id, **ids)
    return handled("applied", record, keyword)


def _held(record: ActivityState | None, hold: Hold) -> ActivityState | None:
    return None if record is None else hold(record)
