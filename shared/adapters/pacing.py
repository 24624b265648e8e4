"""Client-side pacing below Dataverse service-protection limits (the provider send rate: shared_rate.py).

Dataverse allows, per user and web server, 6,000 requests per sliding 300 s window, 1,200 s of execution and 52
concurrent requests, and answers 429 + ``Retry-After`` beyond. Hitting 429s wastes requests and time, so the client
keeps itself below the ceiling: a concurrency cap, a sliding-window request budget, and a process-wide pause when a
429 arrives anyway (several app instances share one application user's limits).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from shared.domain.deferral import Throttled
from shared.log import log_event


def throttled(seconds: float, detail: str) -> Throttled:
    return Throttled(detail, datetime.now(UTC) + timedelta(seconds=seconds))


class Pacer:
    def __init__(
        self,
        max_concurrency: int = 16,
        budget: int | None = None,
        window_seconds: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        hold_limit: float | None = None,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(1, max_concurrency))
        # None: every wait is waited out here (one org). Multi-org: a longer wait raises Throttled instead, so the
        # org's work is scheduled again and never holds the worker that serves the other orgs too.
        self.hold_limit = hold_limit
        self._budget = budget
        self._window = window_seconds
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.waited_seconds = 0.0

    def pause(self, seconds: float) -> None:
        """Every request of this process waits ``seconds`` (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def _wait_for_budget(self) -> None:
        waited, reason = 0.0, "budget"
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait > 0:
                    reason = "pause"  # a 429's Retry-After holds every request of the process
                if wait <= 0 and self._budget is not None:
                    while self._sent and self._sent[0] <= now - self._window:
                        self._sent.popleft()
                    if len(self._sent) >= self._budget:
                        wait = self._sent[0] + self._window - now
                if wait <= 0:
                    if self._budget is not None:
                        self._sent.append(now)
                    break
            if self.hold_limit is not None and wait > self.hold_limit:
                log_event("dataverse.throttled", wait_seconds=round(wait, 2), reason=reason)
                raise throttled(wait, f"Dataverse asks to wait {wait:.0f} s ({reason})")
            self.waited_seconds += wait
            step = min(wait, 1.0)
            waited += step
            self._sleep(step)
        if waited > 0:  # one line per request that had to wait (the dashboard's "pacing waits")
            log_event("dataverse.paced", wait_seconds=round(waited, 2), reason=reason)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of ``max_concurrency`` request slots, within the request budget."""
        self._slots.acquire()
        try:
            self._wait_for_budget()
            yield
        finally:
            self._slots.release()
