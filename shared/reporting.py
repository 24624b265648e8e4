"""Reporting due items (interactions, delivery notifications) exactly once, in order, under a lease.

Works on any state record with ``due``/``recorded`` lists and a ``flush_owner``/``flush_until`` lease, so the
outbound-marketing activity record and the real-time journeys send record share one implementation. Many records
are reported together: each round sends the first due item of every record in one call (``$batch``), so items of
one record stay in order and a failure never reorders or duplicates another record's items.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from shared.domain.due import mark_done
from shared.domain.errors import TransientError
from shared.ports import Clock

# Longer than a whole Dataverse call can take (shared.adapters.dataverse.CALL_DEADLINE_SECONDS = 60 s): a lease that
# expired while its owner was still waiting on Dataverse would let a second worker report the same interaction.
FLUSH_LEASE = timedelta(seconds=150)
FLUSH_WAIT_SECONDS = 0.3  # then defer: the holder reports what we added, the deferred retry is only a safety net
FLUSH_POLL_SECONDS = 0.1


class Reportable(Protocol):
    due: list[str]
    recorded: list[str]
    flush_owner: str | None
    flush_until: datetime | None


S = TypeVar("S", bound=Reportable)
Change = Callable[[S], S | None]
Mutate = Callable[[Change[S]], S]


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
    """Report every due item of one record; raises the first error (after releasing the lease)."""

    def report_many(items: Sequence[tuple[S, str]]) -> list[Exception | None]:
        errors: list[Exception | None] = []
        for record, key in items:
            report(record, key)  # exceptions propagate: a single record stops at its first failure
            errors.append(None)
        return errors

    final, errors = report_due_many([(state, mutate)], report_many, clock, on_reported)
    if errors[0] is not None:
        raise errors[0]
    return final[0]


def report_due_many(
    records: Sequence[tuple[S, Mutate[S]]],
    report_many: Callable[[Sequence[tuple[S, str]]], list[Exception | None]],
    clock: Clock,
    on_reported: Callable[[S, str], Any] | None = None,
) -> tuple[list[S], list[Exception | None]]:
    """Report the due items of many records; per record, the final state and None or the error that stopped it.

    Only one worker reports a record's items at a time (a lease in the record). A worker that finds the lease
    held waits up to ``FLUSH_WAIT_SECONDS``, then gives up on that record with :class:`TransientError` so its
    caller defers (reschedules the message, queues the callback): nothing due is stranded.
    """
    token = uuid.uuid4().hex
    final: list[S] = [state for state, _ in records]
    errors: list[Exception | None] = [None] * len(records)
    active: list[int] = []
    for index, (state, mutate) in enumerate(records):
        if not state.due:
            continue
        try:
            owned = _acquire(mutate, clock, token)
        except TransientError as error:
            errors[index] = error
            continue
        if owned is None:
            final[index] = mutate(lambda s: None)
        else:
            final[index] = owned
            active.append(index)
    try:
        while active:
            round_items = [(final[i], final[i].due[0]) for i in active if final[i].due]
            waiting = [i for i in active if final[i].due]
            results = report_many(round_items) if round_items else []
            next_active: list[int] = []
            for i, (_, key), failure in zip(waiting, round_items, results, strict=True):
                mutate = records[i][1]
                if failure is not None:
                    errors[i] = failure
                    final[i] = mutate(lambda s: _release(s, token, force=True))
                    continue
                until = clock.now() + FLUSH_LEASE

                def done(s: S, key: str = key, until: datetime = until) -> S:
                    moved = mark_done(s, key)
                    if s.flush_owner != token:
                        return moved
                    if not moved.due:  # nothing else due: give the lease back in the same write
                        return replace(moved, flush_owner=None, flush_until=None)  # type: ignore[type-var]
                    return replace(moved, flush_until=until)  # type: ignore[type-var]

                final[i] = mutate(done)
                if on_reported is not None:
                    on_reported(final[i], key)
                if final[i].due and final[i].flush_owner == token:
                    next_active.append(i)  # more is due (or became due while we released): keep going
            active = next_active
    except BaseException:
        for i in active:
            records[i][1](lambda s: _release(s, token, force=True))
        raise
    return final, errors


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
