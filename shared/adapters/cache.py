"""A bounded, expiring, thread-safe cache (per process), for rows the Dataverse client may reuse."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class LruTtlCache:
    """A small thread-safe LRU cache whose entries expire after ``ttl_seconds`` (monotonic clock)."""

    def __init__(self, max_items: int, ttl_seconds: float) -> None:
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._max = max_items
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < time.monotonic():
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + self._ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
