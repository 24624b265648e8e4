"""Use case step: a delivery report that says the provider's queue overflowed (Twilio 30001) sends the text again.

Twilio queues what a sender cannot send at once and fails the excess with error 30001 ("queue overflow: try sending
again after waiting"). The message never reached the carrier, so it is not ``failed`` for the journey (issue #14): the
record goes back to ``claimed`` (its ``sent`` interaction stays recorded once) and a copy of the activity message is
scheduled on the activity queue with backoff. That copy carries only the activity row id (Dataverse's own form of a
trimmed message); the send path reads the row and sends under the usual lease.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

from shared.app.config import Handled, Outcome, handled
from shared.app.deps import Deps
from shared.app.message import activity_ids
from shared.app.reconcile_orders import org_property
from shared.app.settlement import ATTEMPT_PROPERTY, MAX_BACKOFF_SECONDS
from shared.domain.models import ACTIVITY_ENTITY, StatusEvent, StatusKind
from shared.domain.state import ActivityState, SendStatus
from shared.log import log_event

OVERFLOW_CODES = {"twilio": frozenset({"30001"})}


def is_overflow(provider: str, event: StatusEvent) -> bool:
    return event.kind is StatusKind.FAILED and (event.error_code or "") in OVERFLOW_CODES.get(provider, ())


def _requeued(s: ActivityState, message_id: str, code: str) -> ActivityState | None:
    """Only the message the report is about, and only while it is ``sent``: the record may be sent again."""
    if s.send_status is not SendStatus.SENT or s.provider_message_id != message_id:
        return None
    detail = f"{code} provider queue overflow: sent again later"
    return replace(s, send_status=SendStatus.CLAIMED, provider_message_id=None, lease_until=None, last_error=detail)


def send_again_later(deps: Deps, record: ActivityState, event: StatusEvent) -> Handled:
    code = event.error_code or ""
    before = record
    record = deps.records.activities.mutate(record.key, lambda s: _requeued(s, event.provider_message_id, code))
    ids = activity_ids(record.activity)
    if record.send_status is not SendStatus.CLAIMED or before.send_status is SendStatus.CLAIMED:
        log_event("callback.status_ignored", status=event.raw_status, error_code=code, **ids)
        return Handled(Outcome("ignored", record.key))
    attempt = max(1, record.send_attempts)
    delay = min(deps.config.retry_base_seconds * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
    body = {"MessageName": "Create", "PrimaryEntityName": ACTIVITY_ENTITY, "PrimaryEntityId": record.key}
    deps.queue.publish(
        deps.config.activity_queue,
        json.dumps(body).encode(),
        content_type="application/json",
        application_properties={ATTEMPT_PROPERTY: attempt + 1, **org_property(deps)},  # the trimmed body has no org
        message_id=f"{record.key}:overflow{attempt}",
        scheduled_at=deps.clock.now() + timedelta(seconds=delay),
    )
    log_event("callback.queue_overflow", logging.WARNING, error_code=code, delay_seconds=round(delay, 1), **ids)
    return handled("requeued", record)
