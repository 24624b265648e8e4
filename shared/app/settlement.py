"""Settling a message that cannot be processed now: the poison queue (never succeeds) or a rescheduled copy.

Functions retry policies don't apply to Service Bus triggers and a plain exception redelivers at once, so every
expected failure is settled here; these raise only when even the publish fails (then Service Bus redelivers).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from shared.app.config import Outcome
from shared.app.deps import Deps
from shared.domain.deferral import DEFERRALS
from shared.domain.errors import PoisonMessage
from shared.log import log_event
from shared.ports import QueueMessage

ATTEMPT_PROPERTY = "channel-attempt"
MAX_BACKOFF_SECONDS = 3600.0


def attempt_of(message: QueueMessage) -> int:
    try:
        return max(1, int(message.application_properties.get(ATTEMPT_PROPERTY, 1)))
    except (TypeError, ValueError, OverflowError):
        return 1


Logged = tuple[str, int, dict[str, Any]]  # the log event, its level, its fields


def _copy(
    deps: Deps, message: QueueMessage, queue: str, properties: dict[str, Any], logged: Logged, **options: Any
) -> None:
    """Publish the original body to ``queue`` (raises if Service Bus can't take it), then log it."""
    content_type = message.content_type
    deps.queue.publish(queue, message.body, content_type=content_type, application_properties=properties, **options)
    event, level, fields = logged
    log_event(event, level, queue=message.queue, message_id=message.message_id, **fields)


def poison(deps: Deps, message: QueueMessage, reason: str, detail: str) -> Outcome:
    """Send the original message to the poison queue with the reason; the trigger then completes it."""
    properties = {
        **dict(message.application_properties),
        "DeadLetterReason": reason,
        "DeadLetterErrorDescription": detail[:1000],
        "channel-source-queue": message.queue,
        "channel-original-message-id": message.message_id,
    }
    logged = ("message.poisoned", logging.ERROR, {"reason": reason, "detail": detail})
    _copy(deps, message, deps.config.poison_queue, properties, logged, message_id=message.message_id or None)
    return Outcome("poisoned", detail=reason)


def retry_later(deps: Deps, message: QueueMessage, error: Exception) -> Outcome:
    """Reschedule a copy with exponential backoff (at least the error's Retry-After); poison after the last try."""
    attempt = attempt_of(message)
    detail = str(error)
    config = deps.config
    if attempt >= config.max_attempts:
        poison(deps, message, "retries_exhausted", f"gave up after {attempt} attempts: {detail}")
        return Outcome("poisoned", detail="retries_exhausted")
    retry_after = getattr(error, "retry_after", None)
    delay = min(config.retry_base_seconds * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
    if retry_after:
        delay = max(delay, float(retry_after))
    properties = {**dict(message.application_properties), ATTEMPT_PROPERTY: attempt + 1}
    message_id = f"{message.message_id}:retry{attempt}"[:128] if message.message_id else None
    when = deps.clock.now() + timedelta(seconds=delay)
    fields = {"attempt": attempt, "delay_seconds": round(delay, 1), "reason": detail[:300]}
    _copy(
        deps,
        message,
        message.queue,
        properties,
        ("message.retry_scheduled", logging.WARNING, fields),
        message_id=message_id,
        scheduled_at=when,
    )
    return Outcome("retry_scheduled", detail=detail)


def settle(deps: Deps, message: QueueMessage, error: Exception) -> Outcome:
    """Poison input goes to the poison queue; anything else is retried later."""
    if isinstance(error, PoisonMessage):
        return poison(deps, message, error.reason, error.detail)
    if isinstance(error, DEFERRALS):  # quiet hours, the shared send rate (issue #14): not an attempt
        return defer(deps, message, error.until, error.reason)
    return retry_later(deps, message, error)


DEFERRED_PROPERTY = "channel-deferred-until"


def defer(deps: Deps, message: QueueMessage, until: datetime, reason: str) -> Outcome:
    """A scheduled copy at ``until`` with the same attempt count (quiet hours, the shared send rate)."""
    properties = {**dict(message.application_properties), DEFERRED_PROPERTY: until.isoformat()}
    stamp = int(until.timestamp() * 1000)
    message_id = f"{message.message_id}:defer{stamp}"[-128:] if message.message_id else None
    fields = {"reason": reason, "until": until.isoformat(timespec="seconds")}
    logged = ("message.deferred", logging.INFO, fields)
    _copy(deps, message, message.queue, properties, logged, message_id=message_id, scheduled_at=until)
    return Outcome("deferred", detail=f"{reason} until {until.isoformat(timespec='seconds')}")
