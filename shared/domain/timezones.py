"""A contact's time zone from its ``CONTACT_TIMEZONE_COLUMN`` value (pure, given a code lookup).

The column holds either an IANA name (``Europe/Paris``) or a Dataverse time zone code (an integer such as 4 or
85, the ``timezonecode`` of the ``timezonedefinition`` table). Dataverse has no IANA column: a code is resolved to
its ``standardname``, which is the Windows zone id (``Pacific Standard Time``), and that is mapped to IANA with the
Unicode CLDR ``windowsZones`` table (territory 001) as packaged by ``tzlocal.windows_tz``. Anything that does not
resolve falls back to ``QUIET_HOURS_TIMEZONE`` and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tzlocal.windows_tz import win_tz

from shared.domain.quiet_hours import zone_named

StandardNameOf = Callable[[int], str | None]  # Dataverse timezonecode → standardname (None: no such code)


@dataclass(frozen=True)
class ResolvedZone:
    zone: ZoneInfo
    source: str  # column | code | default | unknown
    detail: str | None = None  # what could not be resolved (source=unknown)


def iana_for_windows(standard_name: str) -> str | None:
    """CLDR's IANA zone for a Windows zone id, or None."""
    return win_tz.get(standard_name.strip())


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def resolve(value: object, default: ZoneInfo, standard_name_of: StandardNameOf) -> ResolvedZone:
    """The zone a column value names, or ``default`` (source ``default`` when empty, ``unknown`` when bad)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ResolvedZone(default, "default")
    code = _code(value)
    if code is not None:
        standard = standard_name_of(code)
        iana = iana_for_windows(standard) if standard else None
        zone = zone_named(iana) if iana else None
        if zone is not None:
            return ResolvedZone(zone, "code")
        why = f"time zone code {code} " + ("is not in timezonedefinitions" if not standard else "has no IANA zone")
        return ResolvedZone(default, "unknown", why)
    if isinstance(value, str):
        text = value.strip()
        zone = zone_named(text) or zone_named(iana_for_windows(text) or "")  # IANA, else a Windows zone id
        if zone is not None:
            return ResolvedZone(zone, "column")
        return ResolvedZone(default, "unknown", "not an IANA or Windows time zone name")
    return ResolvedZone(default, "unknown", f"unexpected {type(value).__name__} value")
