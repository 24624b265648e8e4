"""The due/recorded lists shared by every state record: items are queued once and move to recorded once reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol, TypeVar


class HasDue(Protocol):
    due: list[str]
    recorded: list[str]


T = TypeVar("T", bound=HasDue)


def add_items(state: T, *keys: str) -> T:
    """Queue items not yet seen (each at most once)."""
    due = list(state.due)
    for key in keys:
        if key not in due and key not in state.recorded:
            due.append(key)
    return replace(state, due=due)  # type: ignore[type-var]


def mark_done(state: T, key: str) -> T:
    """Move ``key`` from due to recorded."""
    due = [k for k in state.due if k != key]
    recorded = state.recorded if key in state.recorded else [*state.recorded, key]
    return replace(state, due=due, recorded=recorded)  # type: ignore[type-var]


# --- the reporting lease: one worker reports a record's due items at a time ------------------------------------
class Leased(HasDue, Protocol):
    flush_owner: str | None
    flush_until: datetime | None


L = TypeVar("L", bound=Leased)


def take_lease(state: L, token: str, now: datetime, until: datetime) -> L | None:
    """Take (or extend) the reporting lease; None when nothing is due or another worker holds a live lease."""
    if not state.due:
        return None
    if state.flush_owner and state.flush_owner != token and state.flush_until and state.flush_until > now:
        return None
    return replace(state, flush_owner=token, flush_until=until)  # type: ignore[type-var]


def finish_item(state: L, key: str, token: str, until: datetime) -> L:
    """``key`` was reported: move it to recorded; the holder gives the lease back in the same write when nothing
    else is due, else extends it (a worker that lost the lease only records the item)."""
    if state.flush_owner != token:
        return mark_done(state, key)
    due = [k for k in state.due if k != key]
    recorded = state.recorded if key in state.recorded else [*state.recorded, key]
    if not due:
        return replace(state, due=due, recorded=recorded, flush_owner=None, flush_until=None)  # type: ignore[type-var]
    return replace(state, due=due, recorded=recorded, flush_until=until)  # type: ignore[type-var]


def release_lease(state: L, token: str, *, force: bool = False) -> L | None:
    """Give the lease back (None: not ours, or items are still due and ``force`` is off)."""
    if state.flush_owner != token or (state.due and not force):
        return None
    return replace(state, flush_owner=None, flush_until=None)  # type: ignore[type-var]
