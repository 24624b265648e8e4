"""Quiet-hour windows: across midnight, DST changes (zoneinfo), unknown zones, Dataverse time zone codes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.domain.quiet_hours import SPREAD_SECONDS, deferred_until, parse_window, spread, zone_named
from shared.domain.timezones import iana_for_windows, resolve

NY = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_parse() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None and (window.start, window.end) == (time(21), time(8))
    assert parse_window("") is None and parse_window("  ") is None
    assert str(parse_window(" 9:30 - 17:00 ")) == "09:30-17:00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("21-08", "HH:MM-HH:MM"),
        ("24:00-08:00", "hour above 23"),
        ("21:60-08:00", "minute above 59"),
        ("08:00-08:00", "same time"),
    ],
)
def test_parse_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(value)


def test_window_across_midnight() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None
    assert window.contains(time(21)) and window.contains(time(23, 59)) and window.contains(time(0))
    assert window.contains(time(7, 59)) and not window.contains(time(8)) and not window.contains(time(20, 59))
    # 22:30 UTC in the evening: ends at 08:00 the next day
    assert window.ends_after(utc(2026, 3, 2, 22, 30), UTC_ZONE) == utc(2026, 3, 3, 8)
    # 02:00 after midnight: ends at 08:00 the same day
    assert window.ends_after(utc(2026, 3, 3, 2), UTC_ZONE) == utc(2026, 3, 3, 8)
    assert window.ends_after(utc(2026, 3, 3, 12), UTC_ZONE) is None


def test_window_within_a_day() -> None:
    window = parse_window("12:00-14:00")
    assert window is not None
    assert window.ends_after(utc(2026, 3, 3, 13), UTC_ZONE) == utc(2026, 3, 3, 14)
    assert window.ends_after(utc(2026, 3, 3, 14), UTC_ZONE) is None
    assert window.ends_after(utc(2026, 3, 3, 23), UTC_ZONE) is None


def test_the_contacts_zone_decides() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None
    now = utc(2026, 1, 15, 3)  # 03:00 UTC = 22:00 in New York (EST, UTC-5)
    assert window.ends_after(now, NY) == utc(2026, 1, 15, 13)  # 08:00 EST
    assert window.ends_after(utc(2026, 1, 15, 14), NY) is None  # 09:00 in New York


def test_dst_spring_forward_night_is_an_hour_shorter() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None
    # New York springs forward on 8 March 2026 at 02:00. 22:00 EST on the 7th = 03:00 UTC on the 8th.
    end = window.ends_after(utc(2026, 3, 8, 3), NY)
    assert end == utc(2026, 3, 8, 12)  # 08:00 EDT (UTC-4), not 13:00
    assert end is not None and end.astimezone(NY).hour == 8


def test_dst_fall_back_night_is_an_hour_longer() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None
    # New York falls back on 1 November 2026. 22:00 EDT on 31 October = 02:00 UTC on 1 November.
    assert window.ends_after(utc(2026, 11, 1, 2), NY) == utc(2026, 11, 1, 13)  # 08:00 EST


def test_window_ending_in_the_spring_forward_gap_ends_past_it() -> None:
    window = parse_window("23:00-02:30")  # 02:30 does not exist in New York on 8 March 2026
    assert window is not None
    end = window.ends_after(utc(2026, 3, 8, 5), NY)  # 00:00 EST
    assert end is not None and end == utc(2026, 3, 8, 7, 30)  # 03:30 EDT: never inside the window
    assert window.ends_after(end, NY) is None


def test_deferral_is_spread_and_stable() -> None:
    window = parse_window("21:00-08:00")
    assert window is not None
    now = utc(2026, 3, 3, 2)
    first = deferred_until(window, now, UTC_ZONE, "a")
    assert first == deferred_until(window, now + timedelta(hours=1), UTC_ZONE, "a")  # a redelivery: same instant
    offsets = {spread(str(i)) for i in range(200)}
    assert all(timedelta(0) <= o < timedelta(seconds=SPREAD_SECONDS) for o in offsets)
    assert max(offsets) - min(offsets) > timedelta(seconds=SPREAD_SECONDS * 0.8)  # spread over the minutes
    assert deferred_until(window, utc(2026, 3, 3, 9), UTC_ZONE, "a") is None


def test_zone_names() -> None:
    assert zone_named("Europe/Paris") == ZoneInfo("Europe/Paris")
    for bad in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime"):
        assert zone_named(bad) is None


CODES = {4: "Pacific Standard Time", 85: "GMT Standard Time", 7: "Not A Windows Zone"}


@pytest.mark.parametrize(
    ("value", "zone", "source"),
    [
        ("Europe/Paris", "Europe/Paris", "column"),
        (4, "America/Los_Angeles", "code"),
        ("85", "Europe/London", "code"),
        ("Pacific Standard Time", "America/Los_Angeles", "column"),
        (None, "America/New_York", "default"),
        ("  ", "America/New_York", "default"),
        ("Mars/Olympus", "America/New_York", "unknown"),
        (999, "America/New_York", "unknown"),  # not in timezonedefinitions
        (7, "America/New_York", "unknown"),  # a standard name with no IANA zone
        (True, "America/New_York", "unknown"),
        (4.5, "America/New_York", "unknown"),
    ],
)
def test_resolve(value: object, zone: str, source: str) -> None:
    resolved = resolve(value, NY, CODES.get)
    assert (str(resolved.zone), resolved.source) == (zone, source)
    assert (resolved.detail is not None) == (source == "unknown")


def test_windows_names_map_through_cldr() -> None:
    assert iana_for_windows("W. Europe Standard Time") == "Europe/Berlin"
    assert iana_for_windows("Tokyo Standard Time") == "Asia/Tokyo"
    assert iana_for_windows("No Such Zone") is None
