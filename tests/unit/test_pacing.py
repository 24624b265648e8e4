from __future__ import annotations

import logging
import threading

import pytest

from shared.adapters.pacing import Pacer


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_request_budget_is_a_sliding_window() -> None:
    clock = ManualClock()
    pacer = Pacer(max_concurrency=4, budget=10, window_seconds=60, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(25):
        with pacer.slot():
            times.append(clock.now)
    # at most 10 requests start in any 60 s window
    for i in range(len(times)):
        assert sum(1 for t in times if times[i] <= t < times[i] + 60) <= 10
    assert times[-1] >= 120  # 25 requests need three windows


def test_retry_after_pauses_everyone() -> None:
    clock = ManualClock()
    pacer = Pacer(max_concurrency=2, clock=clock, sleep=clock.sleep)
    pacer.pause(7.5)
    with pacer.slot():
        assert clock.now >= 7.5


def test_concurrency_cap() -> None:
    pacer = Pacer(max_concurrency=3)
    inside = []
    peak = [0]
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        with pacer.slot():
            with lock:
                inside.append(1)
                peak[0] = max(peak[0], len(inside))
            release.wait(0.05)
            with lock:
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_each_request_that_waited_logs_one_pacing_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    pacer = Pacer(max_concurrency=1, budget=2, window_seconds=10, clock=clock, sleep=clock.sleep)
    with caplog.at_level(logging.INFO, logger="channel"):
        for _ in range(3):
            with pacer.slot():
                pass
        pacer.pause(2.5)
        with pacer.slot():
            pass
    lines = [r.custom_dimensions for r in caplog.records if r.getMessage().startswith("dataverse.paced")]  # type: ignore[attr-defined]
    assert lines == [
        {"event": "dataverse.paced", "wait_seconds": "10.0", "reason": "budget"},
        {"event": "dataverse.paced", "wait_seconds": "2.5", "reason": "pause"},
    ]


def test_with_a_hold_limit_a_longer_wait_is_deferred_not_slept() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.domain.deferral import DEFERRALS, Throttled

    clock = ManualClock()
    pacer = Pacer(max_concurrency=2, budget=1, window_seconds=60, clock=clock, sleep=clock.sleep, hold_limit=2.0)
    pacer.pause(1.5)
    with pacer.slot():  # a short wait is still waited out here
        assert clock.now >= 1.5
    before = datetime.now(UTC)
    with pytest.raises(Throttled) as caught, pacer.slot():  # the budget is spent for ~60 s: not held here
        pass
    assert clock.now < 2.0 and isinstance(caught.value, DEFERRALS)
    assert caught.value.reason == "dataverse_throttled" and caught.value.until >= before + timedelta(seconds=55)
    pacer.pause(10)
    with pytest.raises(Throttled), pacer.slot():
        pass
