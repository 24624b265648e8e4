"""One generic record store: get / insert / read-modify-write with ETags, for every record type.

A :class:`Codec` says how one record type is keyed and stored; :class:`RecordStore` does the rest the same way for
all of them: insert first (almost every record is new), and keep the last version read or written per key
(bounded, per process) so a read-modify-write usually costs one write. That is safe because every write carries
the ETag: a stale copy can never win, it fails and the record is re-read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from shared.ports import Conflict, KeyValueStore

MAX_CONFLICT_RETRIES = 20


class Stored(Protocol):
    etag: str | None
    updated_at: datetime | None

    @property
    def key(self) -> str: ...


S = TypeVar("S", bound=Stored)


class Codec(Protocol[S]):
    row: str  # the RowKey that tells record types apart (the key is the PartitionKey)

    def encode(self, record: S) -> dict[str, Any]: ...

    def decode(self, values: Mapping[str, Any], etag: str) -> S: ...


class RecordStore(Generic[S]):
    def __init__(
        self, store: KeyValueStore, codec: Codec[S], now: Callable[[], datetime], *, cache_size: int = 4096
    ) -> None:
        self._store = store
        self._codec = codec
        self._now = now
        self._cache_size = cache_size
        self._known: OrderedDict[str, S] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, record: S) -> S:
        with self._lock:
            self._known[record.key] = record
            self._known.move_to_end(record.key)
            while len(self._known) > self._cache_size:
                self._known.popitem(last=False)
        return record

    def _forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)

    def get(self, key: str) -> S | None:
        """The stored record (always read from the store)."""
        found = self._store.get(key, self._codec.row)
        if found is None:
            self._forget(key)
            return None
        return self._remember(self._codec.decode(*found))

    def peek(self, key: str) -> S | None:
        """The last version this process read or wrote, else the stored one. May be stale: decide nothing final
        on it without a write (a write carries the ETag) or a fresh :meth:`get`."""
        with self._lock:
            known = self._known.get(key)
        return known if known is not None else self.get(key)

    def insert(self, record: S) -> S:
        """Create ``record``; raise :class:`Conflict` when it exists."""
        fresh = replace(record, updated_at=self._now())  # type: ignore[type-var]
        fresh.etag = self._store.insert(record.key, self._codec.row, self._codec.encode(fresh))
        return self._remember(fresh)  # our own copy: nobody else holds it yet

    def get_or_insert(self, record: S) -> tuple[S, bool]:
        """Insert ``record`` unless its key exists; (the stored record, whether it was created now)."""
        try:
            return self.insert(record), True
        except Conflict:
            existing = self.get(record.key)
            if existing is None:  # pragma: no cover - deleted in between
                raise
            return existing, False

    def save(self, record: S) -> S:
        """Write ``record`` if nobody changed it since it was read; raise :class:`Conflict` otherwise."""
        if record.etag is None:
            raise ValueError("save() needs a record that was read from the store")
        updated = replace(record, updated_at=self._now())  # type: ignore[type-var]
        try:
            updated.etag = self._store.replace(record.key, self._codec.row, self._codec.encode(updated), record.etag)
        except Conflict:
            self._forget(record.key)
            raise
        return self._remember(updated)  # our own copy: nobody else holds it yet

    def mutate(self, key: str, change: Callable[[S], S | None]) -> S:
        """Read-modify-write with optimistic concurrency; ``change`` returning None means no write.

        Starts from the cached version when there is one; "no change" is only ever decided on fresh data.
        """
        with self._lock:
            current: S | None = self._known.get(key)
        verified = False
        for _ in range(MAX_CONFLICT_RETRIES):
            if current is None:
                current = self.get(key)
                verified = True
                if current is None:
                    raise KeyError(key)
            changed = change(current)
            if changed is None:
                if verified:
                    return current
                current = None
                continue
            try:
                return self.save(changed)
            except Conflict:
                current = None
        raise Conflict(f"record {key} ({self._codec.row}) kept changing under us")
