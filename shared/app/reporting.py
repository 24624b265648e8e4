"""The reporting lease protocol: report due items (interactions, notifications) exactly once, in order.

Works on any record with ``due``/``recorded`` lists and a ``flush_owner``/``flush_until`` lease (the transitions
are the pure functions of :mod:`shared.domain.due`). Many records are reported together: each round sends the
first due item of every record in one call (``$batch``), so the items of one record stay in order and a failure
never reorders or duplicates another record's items.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from shared.domain.due import Leased, finish_item, release_lease, take_lease
from shared.domain.errors import TransientError
from shared.ports import Clock

# Longer than a whole Dataverse call can take (shared.adapters.dataverse.CALL_DEADLINE_SECONDS = 60 s): a lease that
# expired while its owner was still waiting on Dataverse would let a second worker report the same interaction.
FLUSH_LEASE = timedelta(seconds=150)
FLUSH_WAIT_SECONDS = 0.3  # then defer: the holder reports what we added, the deferred retry is only a safety net
FLUSH_POLL_SECONDS = 0.1
# A lease the caller took in the write that made the items due (:meth:`shared.app.outbox.Outbox.hold`) is used
# without another write while it is this fresh; an older one is renewed first (a write that re-checks ownership).
HELD_FRESH = timedelta(seconds=30)

S = TypeVar("S", bound=Leased)
Change = Callable[[S], S | None]
Mutate = Callable[[Change[S]], S]
ReportMany = Callable[[Sequence[tuple[S, str]]], list[Exception | None]]


def report_due_many(
    records: Sequence[tuple[S, Mutate[S]]],
    report_many: ReportMany[S],
    clock: Clock,
    on_reported: Callable[[S, str], Any] | None = None,
    *,
    token: str | None = None,
) -> tuple[list[S], list[Exception | None]]:
    """Report the due items of many records; per record, the final state and None or the error that stopped it.

    Only one worker reports a record's items at a time (a lease in the record). A worker that finds the lease
    held waits up to ``FLUSH_WAIT_SECONDS``, then gives up on that record with :class:`TransientError` so its
    caller defers (reschedules the message, queues the callback): the holder re-reads the record after each item
    and only gives the lease back in the same write that empties ``due``, so nothing due is stranded.
    """
    token = token or uuid.uuid4().hex
    final: list[S] = [state for state, _ in records]
    errors: list[Exception | None] = [None] * len(records)
    active: list[int] = []
    waiting: list[int] = []
    for index, (state, _) in enumerate(records):
        if not state.due:
            continue
        if _freshly_held(state, token, clock.now()):
            active.append(index)  # the caller took the lease in the write that made the items due
        else:
            waiting.append(index)
    waited = 0.0
    while waiting:  # take the leases; wait (once for all of them) for leases other workers hold
        now = clock.now()
        held: list[int] = []
        for index in waiting:
            final[index] = records[index][1](_taker(token, now, now + FLUSH_LEASE))
            if final[index].flush_owner == token:
                active.append(index)
            elif final[index].due:
                held.append(index)
        if held and waited >= FLUSH_WAIT_SECONDS:
            for index in held:
                retry_after = max(_seconds_left(final[index].flush_until, now), 1.0)
                errors[index] = TransientError("another worker is reporting this record's items", retry_after)
            break
        if held:
            clock.sleep(FLUSH_POLL_SECONDS)
            waited += FLUSH_POLL_SECONDS
        waiting = held
    active.sort()
    try:
        while active:
            waiting = [i for i in active if final[i].due]
            round_items = [(final[i], final[i].due[0]) for i in waiting]
            results = report_many(round_items) if round_items else []
            next_active: list[int] = []
            for i, (_, key), failure in zip(waiting, round_items, results, strict=True):
                mutate = records[i][1]
                if failure is not None:
                    errors[i] = failure
                    final[i] = mutate(lambda s: release_lease(s, token, force=True))
                    continue
                final[i] = mutate(_finisher(key, token, clock.now() + FLUSH_LEASE))
                if on_reported is not None:
                    on_reported(final[i], key)
                if final[i].due and final[i].flush_owner == token:
                    next_active.append(i)  # more is due (or became due while we released): keep going
            active = next_active
    except BaseException:
        for i in active:
            records[i][1](lambda s: release_lease(s, token, force=True))
        raise
    return final, errors


def _freshly_held(state: S, token: str, now: datetime) -> bool:
    until = state.flush_until
    return state.flush_owner == token and until is not None and until - now > FLUSH_LEASE - HELD_FRESH


def _taker(token: str, now: datetime, until: datetime) -> Change[S]:
    return lambda s: take_lease(s, token, now, until)


def _finisher(key: str, token: str, until: datetime) -> Change[S]:
    return lambda s: finish_item(s, key, token, until)


def _seconds_left(until: datetime | None, now: datetime) -> float:
    return (until - now).total_seconds() if until else 1.0
