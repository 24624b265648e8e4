"""Multi-org routing of provider callbacks (``MULTI_ORG=true``, issue #15; the rest: :mod:`shared.app.routing`).

- A callback is verified with the credentials of the org its URL names (``?org=<id>``: an org with its own
  provider account), else with the deployment's.
- A delivery report resolves its org from its record; a reply from the callback URL's ``org``, else the real-time
  journeys channel sending from the number it was sent to, else an org configured with that sender, else the org of
  the most recent activity sent to that contact. What no org claims is handled by the home deps (it never needs
  Dataverse: an unknown message, an unmatched reply).
- A queued callback whose events belong to several orgs (an Event Grid batch) is split into one message per org.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.app import callbacks, queued_callbacks
from shared.app.callback_codec import decode_events, encode_events
from shared.app.config import Outcome
from shared.app.deps import Deps
from shared.app.reconcile_orders import ORG_PROPERTY
from shared.app.routing import HOME, Tenants, deps_of, side_by_side
from shared.app.settlement import ATTEMPT_PROPERTY, attempt_of, poison, retry_later
from shared.domain.errors import DataverseError, TransientError, UnknownOrganization
from shared.domain.models import HttpReply, InboundEvent, InboundHttpRequest, ProviderEvent, StatusEvent
from shared.domain.phone import normalize_e164, strip_channel_prefix
from shared.domain.rtj import is_rtj_key
from shared.log import log_event, log_scope
from shared.ports import QueueMessage

MISMATCH = "mismatch"  # the group of events verified with one org's credentials for another org's record


# --- callbacks --------------------------------------------------------------------------------------------------
def route_callback(tenants: Tenants, provider_name: str, request: InboundHttpRequest) -> HttpReply:
    home, org = tenants.home, request.query.get("org")
    verifier = home
    if org:
        try:
            verifier = tenants.deps_for(org, new_work=False)
        except UnknownOrganization as unknown:
            log_event("callback.unknown_org", provider=provider_name, reason=unknown.detail)
            return callbacks.json_error(404, unknown.detail)
        except TransientError:  # the provider retries; what is wrong was logged (org.unusable), never told the caller
            return callbacks.json_error(503, "organization temporarily unavailable")
    with log_scope(org_id=verifier.org_id):
        callback = callbacks.verify(verifier, provider_name, request)
    if isinstance(callback, HttpReply) or not callback.events:
        return callback if isinstance(callback, HttpReply) else callback.reply
    if home.config.callback_processing == "queued":
        callbacks.enqueue(home, provider_name, callback.events, org_id=verifier.org_id)
        return callback.reply
    groups: dict[str, list[ProviderEvent]] = {}
    for event in callback.events:
        groups.setdefault(_org_of_event(tenants, provider_name, event, verifier.org_id) or HOME, []).append(event)
    _drop_mismatched(groups.pop(MISMATCH, []), provider_name, verifier.org_id)
    for event_org, events in groups.items():
        try:
            deps = deps_of(tenants, event_org)
        except (UnknownOrganization, TransientError) as error:  # the callback queue retries or poisons them
            callbacks.enqueue(home, provider_name, events, reason=str(error), org_id=event_org or None)
            continue
        with log_scope(org_id=deps.org_id):
            callbacks.apply_inline(deps, provider_name, events)
    return callback.reply


def route_queued_callbacks(tenants: Tenants, messages: Sequence[QueueMessage]) -> list[Outcome]:
    home = tenants.home
    outcomes: list[Outcome | None] = [None] * len(messages)
    groups: dict[str, list[int]] = {}
    for index, message in enumerate(messages):
        try:
            events = decode_events(message.body)
            hint = str(message.application_properties.get(ORG_PROPERTY) or "") or None
            by_org: dict[str, list[tuple[str, ProviderEvent]]] = {}
            for provider_name, event in events:
                org = _org_of_event(tenants, provider_name, event, hint) or HOME
                by_org.setdefault(org, []).append((provider_name, event))
            mismatched = by_org.pop(MISMATCH, [])
            for provider_name, event in mismatched:
                _drop_mismatched([event], provider_name, hint)
            if len(by_org) > 1 or (mismatched and by_org):  # several orgs (an Event Grid batch): one message each
                outcomes[index] = _split(home, message, by_org)
                continue
            if not by_org:
                outcomes[index] = Outcome("mismatch", detail=f"{len(mismatched)} events")
                continue
            org = next(iter(by_org))
            deps_of(tenants, org)
        except (ValueError, KeyError, TypeError) as exc:
            outcomes[index] = poison(home, message, "invalid_queued_callback", f"cannot decode queued callback: {exc}")
            continue
        except UnknownOrganization as unknown:
            outcomes[index] = poison(home, message, unknown.reason, unknown.detail)
            continue
        except (TransientError, DataverseError) as error:
            outcomes[index] = retry_later(home, message, error)
            continue
        groups.setdefault(org, []).append(index)

    def run(org: str, indexes: list[int]) -> list[Outcome]:
        return queued_callbacks.handle_queued_callbacks(deps_of(tenants, org), [messages[i] for i in indexes])

    for indexes, results in side_by_side(groups, run):
        for index, outcome in zip(indexes, results, strict=True):
            outcomes[index] = outcome
    return [outcome if outcome is not None else Outcome("unknown") for outcome in outcomes]


def _split(home: Deps, message: QueueMessage, by_org: dict[str, list[tuple[str, ProviderEvent]]]) -> Outcome:
    parts = 0
    for org, items in by_org.items():
        for provider_name in dict.fromkeys(p for p, _ in items):
            part = [event for p, event in items if p == provider_name]
            properties = {ATTEMPT_PROPERTY: attempt_of(message), **({ORG_PROPERTY: org} if org else {})}
            home.queue.publish(
                message.queue,
                encode_events(provider_name, part),
                content_type="application/json",
                application_properties=properties,
            )
            parts += 1
    log_event("callback.split", message_id=message.message_id, orgs=len(by_org))
    return Outcome("split", detail=f"{parts} messages")


def _drop_mismatched(events: Sequence[ProviderEvent], provider_name: str, verified_by: str | None) -> None:
    """A report verified with one org's own provider credentials never changes another org's record."""
    for event in events:
        log_event(
            "callback.org_mismatch",
            logging.WARNING,
            provider=provider_name,
            provider_message_id=event.provider_message_id,
            verified_by=verified_by,
        )


def _org_of_event(tenants: Tenants, provider_name: str, event: ProviderEvent, hint: str | None) -> str | None:
    """The org a provider event belongs to (None: no record or number names one)."""
    records = tenants.home.records
    if isinstance(event, StatusEvent):
        key = event.activity_hint or records.indexes.find_by_message(provider_name, event.provider_message_id)
        record = (records.rtj.peek(key) if is_rtj_key(key) else records.activities.peek(key)) if key else None
        if record is None or not record.org_id:
            return hint
        return MISMATCH if hint and record.org_id != hint else record.org_id
    return hint or _org_of_reply(tenants, event)


def _org_of_reply(tenants: Tenants, event: InboundEvent) -> str | None:
    """The org a reply continues: the org that last wrote to this contact from the number (or Cloud API number id)
    the reply was sent to; else the one org configured with that sender; else the org of the most recent activity
    sent to the contact from any number (a messaging-service pool)."""
    indexes = tenants.home.records.indexes
    contact = strip_channel_prefix(event.sender)
    phone = normalize_e164(contact, tenants.home.config.default_country_code) or contact
    ours = [number for number in (event.account, strip_channel_prefix(event.recipient)) if number]
    for number in ours:
        found = indexes.org_of_conversation(number, phone)
        if found:
            return found
    for number in ours:
        found = tenants.org_for_number(number)
        if found:
            return found
    return indexes.org_by_phone(phone)


def apply_event(tenants: Tenants, provider_name: str, event: ProviderEvent) -> Outcome:
    """One event applied and reported now in its org (local runs and tests)."""
    deps = deps_of(tenants, _org_of_event(tenants, provider_name, event, None) or HOME)
    with log_scope(org_id=deps.org_id):
        return callbacks.apply_now(deps, provider_name, event)
