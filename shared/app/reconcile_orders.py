"""Reconciliation orders (issue #13): when an ambiguous record's provider view is settled, and the scheduled message
on the activity queue that asks then (handled by :mod:`shared.app.reconcile`)."""

from __future__ import annotations

from datetime import datetime

from shared.app.deps import Deps
from shared.app.message import activity_ids
from shared.domain import reconcile
from shared.domain.reconcile import KIND_PROPERTY, RECONCILE_KIND, ReconcileOrder
from shared.domain.state import ActivityState, SendStatus
from shared.log import log_event
from shared.ports import QueueMessage

ORG_PROPERTY = "channel-org-id"  # the org whose record an order or queued callback concerns (multi-org, issue #15)


def org_property(deps: Deps) -> dict[str, str]:
    """The org of a message the app publishes for itself (none for the single org)."""
    return {ORG_PROPERTY: deps.org_id} if deps.org_id else {}


def order_properties(deps: Deps) -> dict[str, str]:
    return {KIND_PROPERTY: RECONCILE_KIND, **org_property(deps)}


def is_order(message: QueueMessage) -> bool:
    return message.application_properties.get(KIND_PROPERTY) == RECONCILE_KIND


def due_at(deps: Deps, record: ActivityState, now: datetime | None = None) -> datetime:
    """When the provider's view of this record's latest attempt is settled enough to ask (``now`` at the earliest:
    the caller's ``now``, so that a record already due compares as due)."""
    now = now or deps.clock.now()
    window_end = record.attempt_until or now
    in_flight = record.send_status is SendStatus.SENDING
    replay = deps.provider.replay_window
    return reconcile.reconcile_at(window_end, deps.config.reconcile_after, replay, now, in_flight=in_flight)


def schedule(deps: Deps, record: ActivityState) -> None:
    """Publish the reconciliation order for an ambiguous record (raises if Service Bus cannot take it)."""
    at = due_at(deps, record)
    order = ReconcileOrder("outbound", record.key, at)
    deps.queue.publish(
        deps.config.activity_queue,
        order.encode(),
        content_type="application/json",
        application_properties=order_properties(deps),
        message_id=f"reconcile-{record.key}-{record.send_attempts}",
        scheduled_at=at,
    )
    log_event("reconcile.scheduled", due=at.isoformat(), attempt=record.send_attempts, **activity_ids(record.activity))


def schedule_watchdog(deps: Deps, record: ActivityState) -> None:
    """For a provider that deduplicates replays only for a while (ACS: 5 minutes), the order is published *before*
    the provider call, due right after the lease: a worker dying in the call is then reconciled inside the window
    whatever the activity message's redelivery timing. A send that completes makes it a no-op (one scheduled
    message per send, ACS only)."""
    if deps.provider.replay_window is not None:
        schedule(deps, record)
