"""The due/recorded lists shared by every state record: items are queued once and move to recorded once reported."""

from __future__ import annotations

from dataclasses import replace
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
