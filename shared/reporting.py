"""Reporting due items (interactions, delivery notifications) exactly once, in order, under a lease.

Works on any state record with ``due``/``recorded`` lists and a ``flush_owner``/``flush_until`` lease, so the
outbound-marketing activity record and the real-time journeys send record share one implementation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from shared.domain.errors import TransientError
from shared.ports import Clock

FLUSH_LEASE = timedelta(seconds=30)
FLUSH_WAIT_SECONDS = 5.0
FLUSH_POLL_SECONDS = 0.1


class Reportable(Protocol):
    due: list[str]
    recorded: list[str]
    flush_owner: str | None
    flush_until: datetime | None


S = TypeVar("S", bound=Reportable)
Mutate = Callable[[Callable[[S], S | None]], S]


def mark_done(state: S, key: str) -> S:
    due = [k for k in state.due if k != key]
    recorded = state.recorded if key in state.recorded else [*state.recorded, key]
    return replace(state, due=due, recorded=recorded)  # type: ignore[type-var]


def add_items(state: S, *keys: str) -> S:
    """Queue items not yet seen (each at most once)."""
    due = list(state.due)
    for key in keys:
        if key not in due and key not in state.recorded:
            due.append(key)
    return replace(state, due=due)  # type: ignore[type-var]


def _release(state: S, token: str, *, force: bool = False) -> S | None:
    if state.flush_owner != token or (state.due and not force):
        return None
    return replace(state, flush_owner=None, flush_until=None)  # type: ignore[type-var]


def report_due(
    state: S,
    mutate: Mutate[S],
    report: Callable[[S, str], None],
    clock: Clock,
    on_reported: Callable[[S, str], Any] | None = None,
) -> S:
    """Report every due item of ``state`` in order; each moves to ``recorded`` once ``report`` returned.

    Only one worker reports a record's items at a time (a lease in the record). A worker that finds the lease
    held waits up to ``FLUSH_WAIT_SECONDS``, then raises :class:`TransientError` so its caller defers (reschedules
    the message, queues the callback): nothing due is stranded.
    """
    if not state.due:
        return state
    token = uuid.uuid4().hex
    owned = _acquire(mutate, clock, token)
    if owned is None:
        return mutate(lambda s: None)
    state = owned
    try:
        while True:
            if not state.due:
                state = mutate(lambda s: _release(s, token))
                if state.due and state.flush_owner == token:
                    continue  # more became due while we released: keep going
                return state
            key = state.due[0]
            report(state, key)
            until = clock.now() + FLUSH_LEASE

            def done(s: S, key: str = key, until: datetime = until) -> S:
                moved = mark_done(s, key)
                return replace(moved, flush_until=until) if s.flush_owner == token else moved  # type: ignore[type-var]

            state = mutate(done)
            if on_reported is not None:
                on_reported(state, key)
    except BaseException:
        mutate(lambda s: _release(s, token, force=True))
        raise


def _acquire(mutate: Mutate[S], clock: Clock, token: str) -> S | None:
    waited = 0.0
    while True:
        now = clock.now()
        until = now + FLUSH_LEASE

        def take(s: S, now: datetime = now, until: datetime = until) -> S | None:
            if not s.due:
                return None
            if s.flush_owner and s.flush_owner != token and s.flush_until and s.flush_until > now:
                return None
            return replace(s, flush_owner=token, flush_until=until)  # type: ignore[type-var]

        current = mutate(take)
        if current.flush_owner == token:
            return current
        if not current.due:
            return None
        if waited >= FLUSH_WAIT_SECONDS:
            remaining = (current.flush_until - now).total_seconds() if current.flush_until else 1.0
            raise TransientError("another worker is reporting this record's items", retry_after=max(remaining, 1.0))
        clock.sleep(FLUSH_POLL_SECONDS)
        waited += FLUSH_POLL_SECONDS
