"""One send rate per sender shared by every instance: a GCRA budget in the state table (optimistic concurrency).

The budget is one entity per sender (``PartitionKey`` ``rate-<sha256(provider:sender)>``, ``RowKey`` ``rate``) holding
``next_at``, the earliest wall-clock instant (Unix seconds) the next send may start. Reserving a slot reads it, takes
``start = max(now, next_at)`` and writes ``next_at = start + 1/limit`` with the ETag it read; a conflict re-reads.
Slots are evenly spaced, so the provider never sees a burst, whatever the number of instances. A slot more than
``horizon`` seconds ahead is not taken: the message is deferred (scheduled on the queue), never spun or failed.
Because ``next_at`` only grows, a cached copy that already says "over budget" is conclusive (no read needed);
the outbound path checks it before its first state write, so a deferred activity usually costs no write at all.
Within a process one lock serialises reservations, so only one request per instance contends on the entity.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shared.domain.deferral import OverBudget
from shared.domain.models import InboundHttpRequest, ProviderCallback, SendRequest, SendResult
from shared.domain.reconcile import Lookup, SentQuery
from shared.ports import Conflict, KeyValueStore, Provider

ROW = "rate"
HORIZON_SECONDS = 2.0
# Slots are spaced for 97.5 % of the limit: the provider stamps arrivals after network and scheduling jitter,
# and the margin keeps every 1-second window it measures under the limit + 5 % (bench/README.md).
PACE = 0.975
LATE_SECONDS = 0.025


def partition_for(provider: str, sender: str | None) -> str:
    digest = hashlib.sha256(f"{provider}:{sender or ''}".encode()).hexdigest()[:32]
    return f"rate-{digest}"


class SharedRate:
    """The budget of one sender; thread-safe. ``reserve()`` → the slot's wall-clock start, or raises OverBudget."""

    def __init__(
        self,
        store: KeyValueStore,
        partition: str,
        per_second: float,
        *,
        horizon: float = HORIZON_SECONDS,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._partition = partition
        self._interval = 1.0 / (per_second * PACE)
        # A send may start at most this late in its slot. The pace margin leaves 1/PACE - 1 of a second (26 ms) per
        # second of slack: lateness beyond that could put one text too many in some second at the provider.
        self.tolerance = min(self._interval / 2, LATE_SECONDS)
        self._horizon = max(horizon, self._interval)
        self._wall = wall
        self._lock = threading.Lock()
        self._cached: tuple[float, str] | None = None  # (next_at, etag)
        self.conflicts = 0

    def _read(self) -> tuple[float, str]:
        found = self._store.get(self._partition, ROW)
        if found is None:
            now = self._wall()
            try:
                return now, self._store.insert(self._partition, ROW, {"next_at": now})
            except Conflict:
                found = self._store.get(self._partition, ROW)
                assert found is not None
        values, etag = found
        return float(values.get("next_at") or 0.0), etag

    def _over(self, next_at: float, now: float) -> OverBudget | None:
        wait = next_at - now
        if wait <= self._horizon:
            return None
        # Come back when the backlog has likely moved on, spread so the deferred ones do not return together.
        later = wait - self._horizon / 2 + random.uniform(0.0, 2 * self._horizon)  # noqa: S311 - jitter
        return OverBudget(datetime.fromtimestamp(now + later, UTC))

    def check(self) -> OverBudget | None:
        """Over budget right now, judging by the last copy seen (read once if none): the caller may defer early."""
        with self._lock:
            if self._cached is None:
                self._cached = self._read()
            return self._over(self._cached[0], self._wall())

    def reserve(self) -> float:
        with self._lock:
            while True:
                if self._cached is None:
                    self._cached = self._read()
                next_at, etag = self._cached
                now = self._wall()
                over = self._over(next_at, now)
                if over is not None:
                    raise over
                start = max(now, next_at)
                try:
                    etag = self._store.replace(self._partition, ROW, {"next_at": start + self._interval}, etag)
                except Conflict:
                    self.conflicts += 1
                    self._cached = None
                    continue
                self._cached = (start + self._interval, etag)
                return start


class SharedRates:
    """One :class:`SharedRate` per sender (the configured one, or a real-time journeys channel's own).

    ``one_sender``: the provider always sends from ``default_sender`` whatever a request's sender says (Meta's Cloud
    API sends from ``WHATSAPP_PHONE_NUMBER_ID`` and ignores a journey's From), so every send takes that one budget.
    """

    def __init__(
        self,
        store: KeyValueStore,
        provider: str,
        default_sender: str | None,
        per_second: float,
        *,
        one_sender: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall
        self._store = store
        self._provider = provider
        self._default = default_sender
        self._one_sender = one_sender
        self._per_second = per_second
        self._rates: dict[str, SharedRate] = {}
        self._lock = threading.Lock()

    def for_sender(self, sender: str | None) -> SharedRate:
        key = self._default if self._one_sender else sender or self._default
        partition = partition_for(self._provider, key)
        with self._lock:
            rate = self._rates.get(partition)
            if rate is None:
                rate = SharedRate(self._store, partition, self._per_second, wall=self._wall)
                self._rates[partition] = rate
            return rate


class SharedRateProvider:
    """Sends in the slots of the sender's shared budget (``PROVIDER_MAX_PER_SECOND``); callbacks pass through."""

    def __init__(
        self,
        inner: Provider,
        rates: SharedRates,
        *,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self.rates = rates
        self._sleep = sleep
        self._wall = wall
        self.name = inner.name
        self.replay_window = inner.replay_window
        self.missed_slots = 0

    def lookup(self, query: SentQuery) -> Lookup:
        return self._inner.lookup(query)  # a lookup sends nothing: it takes no slot

    def send(self, request: SendRequest) -> SendResult:
        rate = self.rates.for_sender(request.sender)
        while True:
            start = rate.reserve()  # raises OverBudget (retry-safe: the provider was not called)
            wait = start - self._wall()
            if wait > 0:
                self._sleep(wait)
            if self._wall() - start <= rate.tolerance:
                return self._inner.send(request)
            # Woke up after the slot had passed (a busy process): sending now could land next to the following
            # slot's send and exceed the limit in that second, so the slot is given up and a later one taken.
            self.missed_slots += 1

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        return self._inner.handle_callback(request)
