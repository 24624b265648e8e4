"""The reporting lease protocol: pure lease transitions and the driver that reports due items under the lease."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import MemoryStore
from shared.app.reporting import FLUSH_LEASE, report_due_many
from shared.domain.due import add_items, finish_item, release_lease, take_lease
from shared.domain.errors import TransientError
from shared.domain.models import ActivityRef
from shared.domain.state import ActivityState
from shared.records.codecs import ACTIVITIES
from shared.records.store import RecordStore
from tests.fakes import FakeClock

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + FLUSH_LEASE


def record(*due: str, owner: str | None = None, until: datetime | None = None) -> ActivityState:
    activity = ActivityRef("row", "act", "contact", "journey", "iteration", "t", "m")
    return ActivityState(activity, due=list(due), flush_owner=owner, flush_until=until)


def test_take_lease_needs_something_due_and_no_live_holder() -> None:
    assert take_lease(record(), "me", NOW, UNTIL) is None
    assert take_lease(record("sent", owner="other", until=NOW + timedelta(seconds=1)), "me", NOW, UNTIL) is None
    expired = take_lease(record("sent", owner="other", until=NOW - timedelta(seconds=1)), "me", NOW, UNTIL)
    assert expired is not None and (expired.flush_owner, expired.flush_until) == ("me", UNTIL)
    mine = take_lease(record("sent", owner="me", until=NOW), "me", NOW, UNTIL)
    assert mine is not None and mine.flush_until == UNTIL


def test_finishing_the_last_item_gives_the_lease_back_in_the_same_write() -> None:
    two = record("sent", "delivered", owner="me", until=NOW)
    first = finish_item(two, "sent", "me", UNTIL)
    assert (first.due, first.recorded, first.flush_owner, first.flush_until) == (["delivered"], ["sent"], "me", UNTIL)
    last = finish_item(first, "delivered", "me", UNTIL)
    assert (last.due, last.flush_owner, last.flush_until) == ([], None, None)
    lost = finish_item(record("sent", owner="other", until=UNTIL), "sent", "me", UNTIL)
    assert lost.recorded == ["sent"] and lost.flush_owner == "other"


def test_release_only_gives_back_our_own_lease_and_keeps_it_while_items_are_due() -> None:
    assert release_lease(record("sent", owner="other", until=UNTIL), "me", force=True) is None
    assert release_lease(record("sent", owner="me", until=UNTIL), "me") is None
    forced = release_lease(record("sent", owner="me", until=UNTIL), "me", force=True)
    assert forced is not None and forced.flush_owner is None and forced.due == ["sent"]


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.records: RecordStore[ActivityState] = RecordStore(MemoryStore(), ACTIVITIES, self.clock.now)
        self.reported: list[tuple[str, str]] = []
        self.fail: set[str] = set()

    def add(self, key: str, *due: str) -> ActivityState:
        activity = ActivityRef(key, "a-" + key, "c", "j", "i", "t", "m")
        return self.records.insert(ActivityState(activity, due=list(due)))

    def mutate(self, key: str):  # type: ignore[no-untyped-def]
        return lambda change: self.records.mutate(key, change)

    def report_many(self, items: Sequence[tuple[ActivityState, str]]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for state, item in items:
            if item in self.fail:
                results.append(TransientError(f"{item} refused"))
                continue
            self.reported.append((state.key, item))
            results.append(None)
        return results

    def run(self, *keys: str) -> list[Exception | None]:
        pairs = [(self.records.get(k), self.mutate(k)) for k in keys]
        _, errors = report_due_many([(s, m) for s, m in pairs if s is not None], self.report_many, self.clock)
        return errors


def test_items_of_one_record_go_in_order_one_round_per_item_across_records() -> None:
    h = Harness()
    h.add("a", "sent", "delivered")
    h.add("b", "failed")
    assert h.run("a", "b") == [None, None]
    assert h.reported == [("a", "sent"), ("b", "failed"), ("a", "delivered")]
    for key in ("a", "b"):
        stored = h.records.get(key)
        assert stored is not None and stored.due == [] and stored.flush_owner is None


def test_a_held_lease_defers_after_a_short_wait_and_the_holder_reports_what_was_added() -> None:
    h = Harness()
    h.add("a", "sent")
    h.records.mutate("a", lambda s: take_lease(s, "holder", h.clock.now(), h.clock.now() + FLUSH_LEASE))
    [error] = h.run("a")
    assert isinstance(error, TransientError) and error.retry_after is not None and error.retry_after > 100
    assert h.reported == []
    h.records.mutate("a", lambda s: add_items(s, "delivered"))  # what the deferred worker added stays due
    stored = h.records.get("a")
    assert stored is not None and stored.due == ["sent", "delivered"] and stored.flush_owner == "holder"


def test_a_failed_item_stops_its_record_releases_the_lease_and_keeps_the_item_due() -> None:
    h = Harness()
    h.add("a", "sent", "delivered")
    h.add("b", "sent")
    h.fail = {"delivered"}
    errors = h.run("a", "b")
    assert errors[0] is not None and errors[1] is None
    stored = h.records.get("a")
    assert stored is not None and stored.due == ["delivered"] and stored.recorded == ["sent"]
    assert stored.flush_owner is None


def test_a_crash_mid_report_releases_the_lease_for_the_next_worker() -> None:
    h = Harness()
    h.add("a", "sent")

    def crash(items: Sequence[tuple[ActivityState, str]]) -> list[Exception | None]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report_due_many([(h.records.get("a"), h.mutate("a"))], crash, h.clock)  # type: ignore[list-item]
    stored = h.records.get("a")
    assert stored is not None and stored.flush_owner is None and stored.due == ["sent"]
    assert h.run("a") == [None] and h.reported == [("a", "sent")]
