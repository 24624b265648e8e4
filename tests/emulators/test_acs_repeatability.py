"""The ACS emulator's repeatable requests, as the service documents them (issue #13)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from devtools.emulators.acs_repeatability import Repeatability

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RESULT = {"to": "+15551230001", "messageId": "Outgoing_1", "httpStatusCode": 202, "successful": True}


def tracker() -> tuple[Repeatability, list[float]]:
    clock = [NOW.timestamp()]
    return Repeatability(300, clock=lambda: clock[0]), clock


def stamp(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def test_a_repeat_inside_the_window_gets_the_original_result() -> None:
    repeats, clock = tracker()
    rid, first = str(uuid.uuid4()), stamp(NOW)
    assert repeats.check("+15551230001", "hi", rid, first) is None  # new: execute it
    repeats.remember("+15551230001", "hi", rid, first, RESULT)
    clock[0] += 200
    assert repeats.check("+15551230001", "hi", rid, first) == RESULT and repeats.replays == 1


def test_a_first_sent_outside_the_tracked_duration_is_412() -> None:
    repeats, _ = tracker()
    answer = repeats.check("+15551230001", "hi", str(uuid.uuid4()), stamp(NOW - timedelta(minutes=6)))
    assert answer is not None and answer["httpStatusCode"] == 412 and answer["repeatabilityResult"] == "rejected"


def test_a_repeat_that_does_not_match_the_original_is_400() -> None:
    repeats, _ = tracker()
    rid, first = str(uuid.uuid4()), stamp(NOW)
    repeats.remember("+15551230001", "hi", rid, first, RESULT)
    for to, text in (("+15551230002", "hi"), ("+15551230001", "other")):
        answer = repeats.check(to, text, rid, first)
        assert answer is not None and answer["httpStatusCode"] == 400


def test_malformed_values_are_400_and_plain_requests_execute() -> None:
    repeats, _ = tracker()
    for rid, first in (("not-a-guid", stamp(NOW)), (str(uuid.uuid4()), "yesterday")):
        answer = repeats.check("+15551230001", "hi", rid, first)
        assert answer is not None and answer["httpStatusCode"] == 400
    assert repeats.check("+15551230001", "hi", None, None) is None


def test_server_errors_are_not_remembered_and_entries_expire() -> None:
    repeats, clock = tracker()
    rid, first = str(uuid.uuid4()), stamp(NOW)
    repeats.remember("+15551230001", "hi", rid, first, {**RESULT, "httpStatusCode": 503})
    assert repeats.check("+15551230001", "hi", rid, first) is None  # re-executed
    repeats.remember("+15551230001", "hi", rid, first, RESULT)
    clock[0] += 301
    answer = repeats.check("+15551230001", "hi", rid, first)
    assert answer is not None and answer["httpStatusCode"] == 412  # past the window: unsafe, never executed again
