"""In-process implementations of the ports, with the same semantics as the Azure ones.

Used by unit tests, the benchmark and the local demo's Service Bus stand-in. Thread-safe.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.ports import Conflict


class MemoryStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)
        self.operations = 0

    def _etag(self) -> str:
        return f'W/"{next(self._versions)}"'

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
        with self._lock:
            self.operations += 1
            found = self._rows.get((partition, row))
            return None if found is None else (dict(found[0]), found[1])

    def insert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        with self._lock:
            self.operations += 1
            if (partition, row) in self._rows:
                raise Conflict(f"{partition}/{row} exists")
            etag = self._etag()
            self._rows[(partition, row)] = (dict(values), etag)
            return etag

    def replace(self, partition: str, row: str, values: Mapping[str, Any], etag: str) -> str:
        with self._lock:
            self.operations += 1
            found = self._rows.get((partition, row))
            if found is None or found[1] != etag:
                raise Conflict(f"{partition}/{row} changed")
            new = self._etag()
            self._rows[(partition, row)] = (dict(values), new)
            return new

    def upsert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        with self._lock:
            self.operations += 1
            etag = self._etag()
            self._rows[(partition, row)] = (dict(values), etag)
            return etag

    def rows(self, partition: str) -> list[tuple[str, dict[str, Any], str]]:
        """Every row of one partition (the org registry's listing)."""
        with self._lock:
            self.operations += 1
            return [(row, dict(v), etag) for (p, row), (v, etag) in self._rows.items() if p == partition]

    def delete(self, partition: str, row: str) -> bool:
        with self._lock:
            self.operations += 1
            return self._rows.pop((partition, row), None) is not None


@dataclass
class PublishedMessage:
    queue: str
    body: bytes
    content_type: str | None
    application_properties: dict[str, Any]
    message_id: str | None
    scheduled_at: datetime | None


@dataclass
class MemoryQueue:
    """Records what the app publishes (poison, scheduled retries, queued callbacks)."""

    messages: list[PublishedMessage] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("injected Service Bus failure")
            self.messages.append(
                PublishedMessage(
                    queue, body, content_type, dict(application_properties or {}), message_id, scheduled_at
                )
            )

    def on(self, queue: str) -> list[PublishedMessage]:
        with self._lock:
            return [m for m in self.messages if m.queue == queue]

    def take(self, queue: str) -> list[PublishedMessage]:
        with self._lock:
            taken = [m for m in self.messages if m.queue == queue]
            self.messages = [m for m in self.messages if m.queue != queue]
            return taken
