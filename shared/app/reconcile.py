"""Use case: reconcile an ambiguous send by asking the provider (issue #13; docs/reconciliation.md).

An outbound activity that becomes ambiguous gets a *reconciliation order* on the activity queue, scheduled for when
the provider's view is settled (:func:`shared.domain.reconcile.reconcile_at`). The batch trigger hands it here:

- the record is final (a delivery report resolved it meanwhile) → nothing to do;
- ``sending`` under a live lease → retry later; with an expired lease (the resend itself died in flight) → ambiguous
  again, with a new order;
- ``claimed`` (a resend the provider certainly did not take) → sent now, as any claimed record;
- ``ambiguous`` → the provider's lookup: found → accepted with its message id (``sent`` reported); absent (or a
  deduplicated replay) → claimed and sent now under a fresh lease; unknown → a TransientError: the batch settles it
  with the usual backoff / poison rules, and nothing is sent.

Every decision is one structured log line ``reconcile.decision`` with the activity and the provider message id.
Crash safety: the order is published after the ambiguous write; a worker dying in between leaves the activity's own
message unsettled, and its redelivery meets the ambiguous record and publishes the order again. Orders are
idempotent: every step is an ETag-guarded transition on the record.
"""

from __future__ import annotations

import logging

from shared.app.config import Handled, handled
from shared.app.deps import Deps
from shared.app.links import shorten
from shared.app.message import activity_ids, load_message
from shared.app.policy import prepare_text
from shared.app.reconcile_orders import due_at, schedule, schedule_watchdog
from shared.app.send_activity import plan_for, send_now
from shared.app.settlement import ATTEMPT_PROPERTY
from shared.domain import reconcile
from shared.domain import state as machine
from shared.domain.errors import TransientError
from shared.domain.reconcile import Lookup, SentQuery
from shared.domain.state import ActivityState, SendStatus
from shared.domain.whatsapp import TemplateProblem
from shared.log import log_event
from shared.ports import QueueMessage


def handle_order(deps: Deps, message: QueueMessage) -> Handled:
    """Raises PoisonMessage (not an order) / TransientError (ask again later) for the batch to settle."""
    order = reconcile.parse_order(message.body)
    now = deps.clock.now()
    if order.not_before > now:  # delivered early (e.g. redelivered after a lock loss): settle it later
        raise TransientError("reconciliation not due yet", (order.not_before - now).total_seconds())
    return reconcile_activity(deps, order.key, attempt=int(message.application_properties.get(ATTEMPT_PROPERTY, 1)))


def reconcile_activity(deps: Deps, key: str, *, attempt: int = 1) -> Handled:

    store = deps.records.activities
    record = store.get(key)
    if record is None:
        return handled("reconcile_skipped", key=key, detail="no state record")
    now = deps.clock.now()
    if record.send_status is SendStatus.SENDING:
        if record.lease_until and record.lease_until > now:
            raise TransientError("a send is in flight for this activity", (record.lease_until - now).total_seconds())
        reason = "worker stopped after calling the provider (lease expired)"
        record = store.mutate(key, lambda s: machine.ambiguous(s, detail=reason))
        if record.send_status is SendStatus.AMBIGUOUS:
            schedule(deps, record)
        return handled("ambiguous", record, reason)
    if record.send_status not in (SendStatus.AMBIGUOUS, SendStatus.CLAIMED):
        return handled("duplicate", record, f"already {record.send_status.value}")
    if record.send_status is SendStatus.AMBIGUOUS and due_at(deps, record, now) > now:
        schedule(deps, record)  # too early for this attempt (e.g. an order of an earlier one): ask when settled
        return handled("reconcile_scheduled", record)
    text, contact, content = load_message(deps, record.activity)
    plan = plan_for(deps, text, contact, content)
    if plan.action == "send":
        # The text exactly as the original attempt sent it: the same short links (codes are kept per activity) and
        # the same GSM normalisation, so the provider's copy can be matched and a resend says the same thing.
        text = prepare_text(deps.config.policy, shorten(deps, key, text)).text
    ids = activity_ids(record.activity)
    if plan.action != "send" or plan.phone is None:
        note = f"cannot look up: the contact can no longer be sent to ({plan.reason or plan.action})"
        record = store.mutate(key, lambda s: machine.reconcile_deferred(s, note=note))
        log_event("reconcile.decision", logging.WARNING, decision="left_ambiguous", reason=note, **ids)
        return handled("ambiguous", record, note)
    provider = deps.provider
    lease = deps.config.send_lease
    if record.send_status is SendStatus.AMBIGUOUS:
        found = _lookup(deps, record, plan.phone, text)
        if found.kind == "unknown" and found.final:  # asking again can never tell (e.g. past ACS's window)
            note = f"left for an operator or a delivery report: {found.detail}"
            record = store.mutate(key, lambda s: machine.reconcile_deferred(s, note=note))
            log_event("reconcile.decision", logging.WARNING, decision="left_ambiguous", reason=found.detail, **ids)
            return handled("ambiguous", record, note)
        if found.kind == "unknown":
            note = f"unknown: {found.detail}"
            record = store.mutate(key, lambda s: machine.reconcile_deferred(s, note=note))
            log_event("reconcile.decision", decision="retry", reason=found.detail, attempt=attempt, **ids)
            raise TransientError(f"reconciliation: {found.detail}", found.retry_after)
        if found.kind == "found" and found.message_id:
            message_id, note = found.message_id, f"found: {found.detail}"
            record = store.mutate(
                key, lambda s: machine.reconcile_found(s, provider=provider.name, message_id=message_id, note=note)
            )
            deps.records.indexes.index_message(provider.name, message_id, key)
            log_event("reconcile.decision", decision="found", provider_message_id=message_id, **ids)
            return handled("sent", record, message_id)
        decision = "resent" if found.kind == "absent" else "replayed"
        note, until = f"{decision}: {found.detail}", deps.clock.now() + lease  # now: the lookup took time
        record = store.mutate(
            key,
            lambda s: machine.reconcile_claim(
                s, provider=provider.name, lease_until=until, phone_masked=plan.phone_masked, note=note
            ),
        )
        if record.send_status is not SendStatus.SENDING or record.lease_until != until:
            return handled("duplicate", record, "another worker reconciled it first")
        log_event("reconcile.decision", decision=decision, reason=found.detail, **ids)
        schedule_watchdog(deps, record)  # a replaying provider: this attempt is watched too
    else:  # claimed: a resend the provider certainly did not take (released): send it now
        until = deps.clock.now() + lease
        masked = plan.phone_masked
        record = store.mutate(
            key, lambda s: machine.claim(s, provider=provider.name, lease_until=until, phone_masked=masked)
        )
        if record.send_status is not SendStatus.SENDING or record.lease_until != until:
            return handled("duplicate", record, "another worker claimed it first")
        schedule_watchdog(deps, record)
    return send_now(deps, record, plan.phone, text, None if isinstance(content, TemplateProblem) else content)


def _lookup(deps: Deps, record: ActivityState, phone: str, text: str) -> Lookup:
    lease = deps.config.send_lease
    now = deps.clock.now()
    indexes, provider, key = deps.records.indexes, deps.provider, record.key

    def attributed(message_id: str) -> bool:
        owner = indexes.find_by_message(provider.name, message_id)
        return owner is not None and owner != key

    query = SentQuery(
        to=phone,
        body=text,
        sender=None,
        window_start=reconcile.attempt_start(record.attempt_until, lease) or (record.updated_at or now) - lease,
        window_end=record.attempt_until or now,
        first_sent=reconcile.attempt_start(record.first_attempt_until, lease),
        asked_at=now,
        attributed=attributed,
    )
    return provider.lookup(query)
