"""The outbox: a batch reports once; records of both contracts; errors come back per record; fewer state writes."""

from __future__ import annotations

from datetime import timedelta

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.adapters.rtj_auth import SecretAuthorizer
from shared.app.config import RtjConfig
from shared.app.deps import RtjDeps, build_deps
from shared.app.outbox import Outbox
from shared.domain.models import ActivityRef, StatusEvent, StatusKind
from shared.domain.rtj_state import RtjState, RtjStatus
from shared.domain.state import ActivityState, SendStatus
from shared.ports import QueueMessage
from shared.service import ChannelService
from tests.fakes import FakeClock, FakeDataverse, FakeProvider, config, world
from tests.helpers import ROW_ID, activity_message
from tests.unit.test_rtj import FakeChannelsApi


class CountingDataverse(FakeDataverse):
    batches: int = 0

    def create_interactions(self, calls):  # type: ignore[no-untyped-def]
        self.batches += 1
        return super().create_interactions(calls)


def test_many_records_are_reported_in_one_call_per_round_and_the_latest_version_wins() -> None:
    dataverse, store, clock = CountingDataverse(), MemoryStore(), FakeClock()
    deps = build_deps(config(), dataverse, FakeProvider(), store, MemoryQueue(), clock)
    outbox = Outbox(deps)
    for n in range(5):
        activity = ActivityRef(f"row-{n}", f"act-{n}", "c", "j", "i", "t", "m")
        stale = deps.records.activities.insert(ActivityState(activity, SendStatus.SENT, due=["sent"]))
        outbox.add(stale)
        outbox.add(
            deps.records.activities.mutate(
                stale.key, lambda s: ActivityState(**{**vars(s), "due": ["sent", "delivered"]})
            )
        )
    assert len(outbox) == 5
    assert outbox.report() == {} and len(outbox) == 0
    assert dataverse.batches == 2  # one round per due item, each round one $batch for all five
    assert sorted(dataverse.response_types()) == ["delivered"] * 5 + ["sent"] * 5


def test_errors_come_back_by_record_key_and_the_items_stay_due() -> None:
    w = world()
    w.dataverse.fail_interactions = 1
    outcome = w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m", "application/json"))
    assert outcome.result == "retry_scheduled"
    state = w.repo.get(ROW_ID)
    assert state is not None and state.due == ["sent"] and state.flush_owner is None


def test_rtj_notifications_go_through_the_same_outbox() -> None:
    api, clock = FakeChannelsApi(), FakeClock()
    rtj = RtjDeps(RtjConfig("https://app/cb", None, timedelta(minutes=2)), api, SecretAuthorizer(None))
    deps = build_deps(config(), FakeDataverse(), FakeProvider(), MemoryStore(), MemoryQueue(), clock, rtj=rtj)
    record = deps.records.rtj.insert(RtjState("rtj-1", "def", "req", status=RtjStatus.SENT, provider_message_id="SM1"))
    outbox = Outbox(deps)
    outbox.add(deps.records.rtj.mutate(record.key, lambda r: RtjState(**{**vars(r), "due": ["NotDelivered:30003"]})))
    assert outbox.report() == {}
    assert [(n["Status"], n["Details"]) for n in api.notifications] == [  # type: ignore[index]
        ("NotDelivered", {"Reason": "30003", "Message": "the provider reported the message as not delivered"})
    ]
    stored = deps.records.rtj.get("rtj-1")
    assert stored is not None and stored.recorded == ["NotDelivered:30003"] and stored.flush_owner is None


def test_an_activity_costs_six_state_calls_and_its_delivery_report_two() -> None:
    """Insert already claimed, phone index, accepted, message index, lease, done (was 7); the report takes the
    lease in the write that makes ``delivered`` due and re-indexes nothing (was 5)."""
    w = world()
    w.service.handle_activity_message(QueueMessage("activities", activity_message(), "m", "application/json"))
    assert w.store.operations == 6
    before = w.store.operations
    w.service.apply_event("fake", StatusEvent("FK000001", StatusKind.DELIVERED, "delivered", activity_hint=ROW_ID))
    assert w.store.operations - before == 2
    assert w.dataverse.response_types() == ["sent", "delivered"]


def test_the_facade_only_delegates() -> None:
    w = world()
    assert isinstance(w.service, ChannelService) and w.service.config is w.service.deps.config
