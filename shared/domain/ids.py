"""GUIDs as Dataverse writes them (neutral: used by the activity parser and the real-time journeys contract)."""

from __future__ import annotations

import uuid


def is_guid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value.strip("{}")) == 36


def normalize_guid(value: str) -> str:
    return str(uuid.UUID(value))
