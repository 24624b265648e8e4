"""The shared send rate: one GCRA budget in the state table, optimistic concurrency, deferral beyond the horizon."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

import pytest

from shared.adapters.memory import MemoryStore
from shared.adapters.shared_rate import PACE, ROW, SharedRate, SharedRateProvider, SharedRates, partition_for
from shared.domain.deferral import OverBudget
from shared.domain.errors import SendFailedTransient
from shared.domain.models import SendRequest, SendResult


class Wall:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_slots_are_evenly_spaced_and_shared_by_every_instance() -> None:
    store, wall = MemoryStore(), Wall()
    a = SharedRate(store, "rate-x", 20, wall=wall)  # two instances: two objects over one store
    b = SharedRate(store, "rate-x", 20, wall=wall)
    slots = [a.reserve(), b.reserve(), a.reserve(), b.reserve()]
    assert slots == pytest.approx([wall.now + i / (20 * PACE) for i in range(4)])
    assert b.conflicts + a.conflicts >= 1  # each found the other's write through its ETag
    found = store.get("rate-x", ROW)
    assert found is not None and found[0]["next_at"] == pytest.approx(wall.now + 4 / (20 * PACE))


def test_beyond_the_horizon_is_over_budget_and_takes_no_slot() -> None:
    store, wall = MemoryStore(), Wall()
    rate = SharedRate(store, "rate-y", 10, horizon=1.0, wall=wall)
    interval = 1 / (10 * PACE)
    taken = 0
    while taken * interval <= 1.0:  # every slot up to 1 s ahead
        rate.reserve()
        taken += 1
    with pytest.raises(OverBudget) as raised:
        rate.reserve()
    until = raised.value.until
    assert until > datetime.fromtimestamp(wall.now, UTC)
    assert raised.value.retry_safe and isinstance(raised.value, SendFailedTransient)
    assert rate.check() is not None  # the cached copy is conclusive
    assert SharedRate(store, "rate-y", 10, horizon=1.0, wall=wall).check() is not None  # a new instance reads it
    wall.now += 1.0
    assert rate.check() is None
    assert rate.reserve() == pytest.approx(wall.now - 1.0 + taken * interval)  # the budget moved on: no slot lost


def test_an_idle_budget_does_not_bank_a_burst() -> None:
    store, wall = MemoryStore(), Wall()
    rate = SharedRate(store, "rate-z", 5, wall=wall)
    rate.reserve()
    wall.now += 60
    assert [rate.reserve(), rate.reserve()] == pytest.approx([wall.now, wall.now + 1 / (5 * PACE)])


def test_threads_in_many_instances_never_share_a_slot() -> None:
    store, wall = MemoryStore(), Wall()
    rates = [SharedRate(store, "rate-t", 100, horizon=100, wall=wall) for _ in range(4)]
    taken: list[float] = []
    lock = threading.Lock()

    def run(rate: SharedRate) -> None:
        for _ in range(50):
            slot = rate.reserve()
            with lock:
                taken.append(slot)

    threads = [threading.Thread(target=run, args=(rates[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(taken)
    assert len(ordered) == 400
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) == pytest.approx(1 / (100 * PACE))


class Recorder:
    name = "loopback"
    replay_window = None

    def __init__(self) -> None:
        self.sent: list[SendRequest] = []

    def send(self, request: SendRequest) -> SendResult:
        self.sent.append(request)
        return SendResult("id", "accepted")

    def handle_callback(self, request: object) -> object:
        raise AssertionError("not used")


def test_the_wrapper_keys_the_budget_on_the_sender() -> None:
    store = MemoryStore()
    inner = Recorder()
    provider = SharedRateProvider(inner, SharedRates(store, "loopback", "+15550000000", 50), sleep=lambda s: None)
    request = SendRequest("+15551234567", "hi", "row", "https://cb", "row")
    provider.send(request)
    provider.send(SendRequest("+15551234567", "hi", "row2", "https://cb", "row2", sender="+15559999999"))
    assert len(inner.sent) == 2
    assert store.get(partition_for("loopback", "+15550000000"), ROW) is not None
    assert store.get(partition_for("loopback", "+15559999999"), ROW) is not None
    assert partition_for("loopback", None) != partition_for("twilio", None)


def test_one_sender_ignores_the_requests_sender() -> None:
    """Meta's Cloud API sends from the phone number id whatever From says: one budget for every send."""
    store = MemoryStore()
    inner = Recorder()
    rates = SharedRates(store, "whatsapp", "106540352242922", 50, one_sender=True)
    provider = SharedRateProvider(inner, rates, sleep=lambda s: None)
    provider.send(SendRequest("+15551234567", "hi", "row", "https://cb", "row"))
    provider.send(SendRequest("+15551234567", "hi", "row2", "https://cb", "row2", sender="whatsapp:+15559999999"))
    assert len(inner.sent) == 2
    assert rates.for_sender("whatsapp:+15559999999") is rates.for_sender(None)
    assert store.get(partition_for("whatsapp", "whatsapp:+15559999999"), ROW) is None
    found = store.get(partition_for("whatsapp", "106540352242922"), ROW)
    assert found is not None and found[0]["next_at"] > 0


def test_a_slot_woken_up_too_late_is_given_up_not_bunched() -> None:
    store, wall = MemoryStore(), Wall()
    inner = Recorder()
    late = iter([0.2, 0.0])  # the first wake-up comes 200 ms after its slot (a busy process), the second on time

    def sleep(seconds: float) -> None:
        wall.now += seconds + next(late, 0.0)

    rates = SharedRates(store, "loopback", None, 20, wall=wall)
    provider = SharedRateProvider(inner, rates, sleep=sleep, wall=wall)
    SharedRate(store, partition_for("loopback", None), 20, wall=wall).reserve()  # another instance holds "now"
    provider.send(SendRequest("+15551234567", "hi", "row", "https://cb", "row"))
    assert provider.missed_slots == 1 and len(inner.sent) == 1
