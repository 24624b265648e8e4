"""Reconciliation orders (issue #13): when an ambiguous record's provider view is settled, and the scheduled message
on the activity queue that asks then (handled by :mod:`shared.app.reconcile`)."""

from __future__ import annotations

from datetime import datetime

from shared.app.deps import Deps
from shared.app.message import activity_ids
from shared.domain import reconcile
from shared.domain.reconcile import KIND_PROPERTY, RECONCILE_KIND, ReconcileOrder
from shared.domain.state import ActivityState
from shared.log import log_event
from shared.ports import QueueMessage


def is_order(message: QueueMessage) -> bool:
    return message.application_properties.get(KIND_PROPERTY) == RECONCILE_KIND


def due_at(deps: Deps, record: ActivityState) -> datetime:
    """When the provider's view of this record's latest attempt is settled enough to ask."""
    lease = deps.config.send_lease
    now = deps.clock.now()
    window_end = record.attempt_until or now
    first_sent = reconcile.attempt_start(record.first_attempt_until, lease)
    return reconcile.reconcile_at(window_end, deps.config.reconcile_after, first_sent, deps.provider.replay_window, now)


def schedule(deps: Deps, record: ActivityState) -> None:
    """Publish the reconciliation order for an ambiguous record (raises if Service Bus cannot take it)."""
    at = due_at(deps, record)
    order = ReconcileOrder("outbound", record.key, at)
    deps.queue.publish(
        deps.config.activity_queue,
        order.encode(),
        content_type="application/json",
        application_properties={KIND_PROPERTY: RECONCILE_KIND},
        message_id=f"reconcile-{record.key}-{record.send_attempts}",
        scheduled_at=at,
    )
    log_event("reconcile.scheduled", due=at.isoformat(), attempt=record.send_attempts, **activity_ids(record.activity))
