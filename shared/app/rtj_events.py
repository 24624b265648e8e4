"""Use cases: provider events for real-time journeys sends.

- a delivery report → one ``msdyn_D365ChannelsNotification`` (``Delivered``/``NotDelivered``), due in the record
  and reported by the caller's outbox;
- a reply to a real-time journeys sender → one ``msdyn_D365ChannelsInbound`` (deduplicated per provider message).
"""

from __future__ import annotations

import logging

from shared.app.config import Handled, Outcome, handled
from shared.app.deps import Deps
from shared.app.outbox import Hold, no_hold
from shared.domain import rtj_state
from shared.domain.models import InboundEvent, StatusEvent, StatusKind
from shared.domain.phone import normalize_e164, strip_channel_prefix
from shared.domain.rtj_state import RtjState
from shared.log import log_event, mask_phone


def apply_status(deps: Deps, provider_name: str, event: StatusEvent, key: str, hold: Hold = no_hold) -> Handled:
    store = deps.records.rtj
    record = store.peek(key)
    if record is None:
        log_event("callback.unknown_message", provider=provider_name, provider_message_id=event.provider_message_id)
        return Handled(Outcome("unknown"))
    if record.provider_message_id and record.provider_message_id != event.provider_message_id:
        log_event(
            "callback.mismatch",
            logging.WARNING,
            provider_message_id=event.provider_message_id,
            request_id=record.request_id,
        )
        return Handled(Outcome("mismatch", key))
    if event.kind not in (StatusKind.DELIVERED, StatusKind.OPENED, StatusKind.FAILED):
        return Handled(Outcome("ignored", key))
    reason = event.error_code or event.raw_status

    def change(r: RtjState) -> RtjState | None:
        changed = rtj_state.on_status(r, message_id=event.provider_message_id, kind=event.kind, reason=reason)
        return None if changed is None else hold(changed)

    record = store.mutate(key, change)
    log_event(
        "rtj.status",
        status=event.raw_status,
        provider_message_id=event.provider_message_id,
        request_id=record.request_id,
    )
    return handled("applied", record)


def apply_inbound(deps: Deps, provider_name: str, event: InboundEvent) -> Handled | None:
    """Forward a reply to a real-time journeys sender; None when our number is not one."""
    if deps.rtj is None:
        return None  # real-time journeys support is not enabled
    indexes = deps.records.indexes
    channel = indexes.channel_for_sender(strip_channel_prefix(event.recipient))
    if channel is None:
        return None
    definition, sender = channel
    if indexes.inbound_done(provider_name, event.provider_message_id):
        return Handled(Outcome("duplicate"))
    api = deps.rtj.dataverse
    customer = strip_channel_prefix(event.sender)
    api.channels_inbound(
        {
            "ChannelDefinitionId": definition,
            "To": sender,
            "From": normalize_e164(customer, deps.rtj.config.default_country_code) or customer,
            "OrganizationId": api.organization_id(),
            "Message": {"text": event.text},
        }
    )
    indexes.mark_inbound_done(provider_name, event.provider_message_id)
    log_event(
        "rtj.inbound",
        provider_message_id=event.provider_message_id,
        channel_definition_id=definition,
        phone=mask_phone(customer),
    )
    return Handled(Outcome("applied"))
