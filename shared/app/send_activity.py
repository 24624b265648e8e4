"""Use case: one outbound-marketing activity → at most one provider send → its interaction due.

The first state write carries the decision: a new record is inserted already suppressed, failed or claimed for
sending (one write instead of create-then-claim). A record that exists (a redelivery, a duplicate message) is
taken from where it stands: final → nothing is sent again; sending under a live lease → retry later; sending with
an expired lease → ambiguous (never resent); claimed → the decision is applied with an ETag write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from shared.app import reconcile_orders as reconcile
from shared.app.config import Handled, Outcome, handled
from shared.app.deps import Deps
from shared.app.links import shorten
from shared.app.message import Contacts, activity_ids, load_message, set_opted_out
from shared.app.policy import before_send, prepare_text, segment_fields
from shared.app.send import send_claimed, send_request
from shared.domain import state as machine
from shared.domain.deferral import OverBudget
from shared.domain.errors import PoisonMessage, TransientError
from shared.domain.models import ActivityRef, Contact
from shared.domain.phone import normalize_e164
from shared.domain.reconcile import attempt_start
from shared.domain.send import OUTBOUND
from shared.domain.state import FINAL_SEND_STATES, ActivityState, SendStatus
from shared.domain.whatsapp import RichContent, TemplateProblem
from shared.log import log_event, mask_phone


@dataclass(frozen=True)
class Plan:
    """What to do with an unsent record: suppress, fail without sending (``reason``), or send to ``phone``."""

    action: str  # suppress | fail | send
    phone_masked: str
    phone: str | None = None
    reason: str | None = None


def plan_for(deps: Deps, text: str, contact: Contact, content: RichContent | TemplateProblem | None = None) -> Plan:
    if contact.opted_out:
        return Plan("suppress", mask_phone(contact.phone))
    phone = normalize_e164(contact.phone, deps.config.default_country_code)
    if phone is None:
        reason = "no phone number" if not contact.phone else "phone number is not E.164-normalisable"
        return Plan("fail", mask_phone(contact.phone), reason=reason)
    if isinstance(content, TemplateProblem):  # issue #17: never a template with a hole in it
        return Plan("fail", mask_phone(phone), reason=str(content))
    if not text.strip() and (content is None or content.template is None):
        return Plan("fail", mask_phone(phone), reason="message text is empty after personalisation")
    return Plan("send", mask_phone(phone), phone=phone)


def _is_template(content: RichContent | TemplateProblem | None) -> bool:
    """A template is sent instead of the text: its segments are not the body's (the provider renders it)."""
    return isinstance(content, RichContent) and content.template is not None


def _apply(deps: Deps, plan: Plan, s: ActivityState, lease_until: datetime) -> ActivityState | None:
    if plan.action == "suppress":
        return machine.suppressed(s)
    if plan.action == "fail":
        return machine.not_sent(s, str(plan.reason), plan.phone_masked)
    return machine.claim(s, provider=deps.provider.name, lease_until=lease_until, phone_masked=plan.phone_masked)


def _took(plan: Plan, record: ActivityState, lease_until: datetime) -> bool:
    if plan.action == "send":
        return record.send_status is SendStatus.SENDING and record.lease_until == lease_until
    wanted = SendStatus.SUPPRESSED if plan.action == "suppress" else SendStatus.FAILED
    return record.send_status is wanted


def process_activity(deps: Deps, activity: ActivityRef, contacts: Contacts | None = None) -> Handled:
    """Raises PoisonMessage / TransientError / DataverseError for the caller to settle."""
    store = deps.records.activities
    try:
        text, contact, content = load_message(deps, activity, contacts)
    except PoisonMessage:
        existing = store.get(activity.row_id)
        if existing is not None and existing.send_status in FINAL_SEND_STATES:
            return _existing(deps, existing)  # already settled: the input going bad since changes nothing
        raise
    plan = plan_for(deps, text, contact, content)
    if plan.action == "send":
        # Link tracking (issue #16), then the sending policy (issue #14: quiet hours / a spent rate defer, segments may
        # fail), both on the text that is sent: segments are counted with the short links in it.
        text = shorten(deps, activity.row_id, text)
        now, ids = deps.clock.now(), activity_ids(activity)
        policy, template = deps.config.policy, _is_template(content)
        prepared = before_send(policy, now, activity.row_id, contact.zone, text, ids, template=template)
        text = prepared.text
        if prepared.too_long:
            plan = Plan("fail", plan.phone_masked, reason=prepared.too_long)
    lease_until = deps.clock.now() + deps.config.send_lease
    first = _apply(deps, plan, ActivityState(activity, org_id=deps.org_id), lease_until)
    if first is None:  # pragma: no cover - a new record is unsent: every plan applies to it
        raise RuntimeError(f"no first state for plan {plan.action}")
    if plan.action == "send":  # issue #13: before the claim is written, so no crash can skip it (ACS only)
        reconcile.schedule_watchdog(deps, first)
    record, created = store.get_or_insert(first)
    if not created:
        _check_org(deps, record)
        if record.send_status is not SendStatus.CLAIMED:
            return _existing(deps, record)
        record = store.mutate(activity.row_id, lambda s: _apply(deps, plan, s, lease_until))
        if not _took(plan, record, lease_until):
            return _existing(deps, record)  # another worker moved it on first
        if plan.action == "send":  # a claimed record sent again: a new repeatable series (issue #13)
            reconcile.schedule_watchdog(deps, record)
    ids = activity_ids(activity)
    if plan.action == "suppress":
        log_event("activity.suppressed", reason="compliance", column=deps.config.compliance_column, **ids)
        return handled("suppressed", record)
    if plan.action == "fail":
        log_event("activity.not_sent", logging.WARNING, reason=plan.reason, phone=plan.phone_masked, **ids)
        return handled("failed", record, plan.reason)
    return _send(deps, record, str(plan.phone), text, None if isinstance(content, TemplateProblem) else content)


def _check_org(deps: Deps, record: ActivityState) -> None:
    """Multi-org (issue #15): an activity id already used in another org (forged or reused) is never touched."""
    if record.org_id and deps.org_id and record.org_id != deps.org_id:
        raise PoisonMessage("activity_of_another_organization", f"activity {record.key} belongs to another org")


def _existing(deps: Deps, record: ActivityState) -> Handled:
    _check_org(deps, record)
    ids = activity_ids(record.activity)
    if record.send_status is SendStatus.AMBIGUOUS:  # issue #13: (re)publish its reconciliation order, in case the
        reconcile.schedule(deps, record)  # worker that made it ambiguous died before publishing it
    if record.send_status in FINAL_SEND_STATES:
        log_event("activity.duplicate", send_status=record.send_status.value, **ids)
        return handled("duplicate", record, record.send_status.value)
    if record.send_status is SendStatus.CLAIMED:  # released again between our read and write
        raise TransientError("the activity record changed under us; retry")
    now = deps.clock.now()
    if record.lease_until and record.lease_until > now:
        wait = (record.lease_until - now).total_seconds()
        reconcile.schedule_watchdog(deps, record)  # issue #13: a replaying provider's window must not be missed
        raise TransientError("another worker is sending this activity", retry_after=wait)
    reason = "worker stopped after calling the provider (lease expired)"
    record = deps.records.activities.mutate(record.key, lambda s: machine.ambiguous(s, detail=reason))
    _log_ambiguous(deps, record, reason)
    return handled("ambiguous", record, record.last_error)


def _log_ambiguous(deps: Deps, record: ActivityState, reason: str) -> None:
    """No duplicate SMS is the priority: an uncertain send is never repeated blindly; it is reconciled by asking the
    provider (issue #13), or a delivery report for it (it carries the activity id) resolves it first."""
    if record.send_status is SendStatus.AMBIGUOUS:
        reconcile.schedule(deps, record)
    log_event(
        "activity.ambiguous",
        logging.ERROR,
        reason=reason,
        send_status=record.send_status.value,
        **activity_ids(record.activity),
    )


def _send(deps: Deps, record: ActivityState, phone: str, text: str, content: RichContent | None = None) -> Handled:
    activity = record.activity
    ids = activity_ids(activity)
    # Index the number before the provider can deliver the text: a reply (a STOP above all) must find this
    # activity even if the worker dies between the provider accepting and our state write.
    deps.records.indexes.index_phone(phone, activity.row_id, deps.clock.now())
    if record.lease_until is None or deps.clock.now() >= record.lease_until:
        # issue #13: a request may only leave inside its lease (the reconciliation's send window relies on it)
        raise TransientError("the send lease expired before the provider call; nothing was sent")
    request = send_request(activity.row_id, phone, text, deps.config.callback_url, content=content)
    request = replace(request, first_sent=first_sent(deps, record))  # issue #13: the repeatable series' start
    provider = deps.provider
    prepared = prepare_text(deps.config.policy, text, template=_is_template(content))
    encoding, segments = segment_fields(prepared)  # logged per send, never the text
    log_event(
        "provider.send",
        provider=provider.name,
        phone=mask_phone(phone),
        attempt=record.send_attempts,
        encoding=encoding,
        segments=segments,
        **ids,
    )
    attempt = send_claimed(deps.records.activities, OUTBOUND, provider, activity.row_id, request)
    record = attempt.record
    if attempt.result is not None:
        message_id = attempt.result.provider_message_id
        log_event("provider.accepted", provider_message_id=message_id, status=attempt.result.status, **ids)
        deps.records.indexes.index_message(provider.name, message_id, activity.row_id)
        return handled("sent", record, message_id)
    if attempt.rejected is not None:
        rejected = attempt.rejected
        log_event("provider.rejected", logging.WARNING, code=rejected.code, reason=rejected.detail, **ids)
        if rejected.opted_out:
            set_opted_out(deps, activity, "provider reports the recipient opted out")
        return handled("failed", record, rejected.detail)
    if attempt.kind == "released" and attempt.transient is not None:
        level = logging.INFO if isinstance(attempt.transient, OverBudget) else logging.WARNING  # a spent rate: no fault
        log_event("provider.transient", level, reason=attempt.detail, **ids)
        raise attempt.transient  # the caller reschedules the message
    _log_ambiguous(deps, record, attempt.detail)
    return Handled(Outcome("ambiguous", activity.row_id, attempt.detail))


def first_sent(deps: Deps, record: ActivityState) -> datetime | None:
    return attempt_start(record.first_attempt_until, deps.config.send_lease)


send_now = _send  # a claimed record, sent (shared.app.reconcile resends through it)
