"""Quiet hours: a local-time window in which nothing is sent, evaluated in the contact's time zone (pure).

``QUIET_HOURS`` is ``HH:MM-HH:MM`` (the start inclusive, the end exclusive; ``21:00-08:00`` crosses midnight).
Times are wall-clock times in the zone, so the window follows daylight saving changes: the end is the end time on
the right local date, turned into an instant with ``zoneinfo``. An end time that does not exist that day (the
spring-forward gap) resolves past the gap; one that exists twice (fall back) is its first occurrence.

Where the window ends, deferred activities are spread over :data:`SPREAD_SECONDS` (a stable offset per activity)
so that a whole journey does not fire in the same second.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SPREAD_SECONDS = 300
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietWindow:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time falls in the window."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight

    def ends_after(self, now: datetime, zone: tzinfo) -> datetime | None:
        """The instant (UTC) the window ends, if ``now`` (aware) is inside it in ``zone``; else None."""
        local = now.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        if not self.contains(wall):
            return None
        day = local.date()
        if self.start > self.end and wall >= self.start:
            day += timedelta(days=1)  # the evening part of a window that ends tomorrow morning
        end = datetime.combine(day, self.end, tzinfo=zone)
        # Round-trip through UTC: a wall time inside a spring-forward gap becomes the instant just past it.
        return end.astimezone(UTC)


def parse_window(value: str) -> QuietWindow | None:
    """``HH:MM-HH:MM`` → a window; empty → None (quiet hours off). Raises ValueError with what is wrong."""
    if not value or not value.strip():
        return None
    match = _WINDOW.match(value)
    if not match:
        raise ValueError(f"'{value}' is not a window such as 21:00-08:00 (HH:MM-HH:MM, 24-hour local time)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"'{value}' has an hour above 23 or a minute above 59")
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError(f"'{value}' starts and ends at the same time (an empty or a 24-hour window)")
    return QuietWindow(start, end)


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or None when it is not a zone this runtime knows."""
    name = name.strip()
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def spread(key: str, seconds: int = SPREAD_SECONDS) -> timedelta:
    """A stable offset in [0, seconds) for ``key``: redeliveries of one activity land on the same instant."""
    digest = hashlib.sha256(key.encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:4], "big") % (seconds * 1000))


def deferred_until(window: QuietWindow, now: datetime, zone: tzinfo, key: str) -> datetime | None:
    """When an activity that arrives at ``now`` may be sent, if it is inside the window; else None."""
    end = window.ends_after(now, zone)
    return None if end is None else end + spread(key)
