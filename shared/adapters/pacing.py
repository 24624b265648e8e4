"""Client-side pacing below Dataverse service-protection limits, and a provider send rate.

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

from shared.domain.models import InboundHttpRequest, ProviderCallback, SendRequest, SendResult
from shared.domain.reconcile import Lookup, SentQuery
from shared.ports import Provider


class Pacer:
    def __init__(
        self,
        max_concurrency: int = 16,
        budget: int | None = None,
        window_seconds: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(1, max_concurrency))
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
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0 and self._budget is not None:
                    while self._sent and self._sent[0] <= now - self._window:
                        self._sent.popleft()
                    if len(self._sent) >= self._budget:
                        wait = self._sent[0] + self._window - now
                if wait <= 0:
                    if self._budget is not None:
                        self._sent.append(now)
                    return
            self.waited_seconds += wait
            self._sleep(min(wait, 1.0))

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of ``max_concurrency`` request slots, within the request budget."""
        self._slots.acquire()
        try:
            self._wait_for_budget()
            yield
        finally:
            self._slots.release()


class RateLimiter:
    """At most ``per_second`` events per second (0 = unlimited), spread evenly; thread-safe."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


class RateLimitedProvider:
    """Wraps a provider so sends stay under ``PROVIDER_MAX_PER_SECOND`` (callbacks pass straight through)."""

    def __init__(self, inner: Provider, limiter: RateLimiter) -> None:
        self._inner = inner
        self._limiter = limiter
        self.name = inner.name
        self.replay_window = inner.replay_window

    def lookup(self, query: SentQuery) -> Lookup:
        return self._inner.lookup(query)  # a lookup sends nothing: not paced

    def send(self, request: SendRequest) -> SendResult:
        self._limiter.acquire()
        return self._inner.send(request)

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        return self._inner.handle_callback(request)
