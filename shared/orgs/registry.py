"""The org registry (issue #15): registered customer orgs in the state account's ``ORG_TABLE_NAME`` table.

The operator commands (``channel org ...``) add, update, disable and remove rows; the app reads them through
:meth:`OrgRegistry.lookup`, cached for ``ORG_CACHE_SECONDS`` so a change takes effect within that time on every
instance. Every write is validated first (:func:`shared.orgs.model.org_settings`): a row the app could not use is
never stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.orgs.model import OrgRecord, from_entity, org_id_of, org_settings, to_entity
from shared.ports import Conflict
from shared.settings import Settings


class OrgTable(Protocol):
    """Rows keyed by organization id (Azure Table semantics: ETags, insert conflicts)."""

    def get(self, org_id: str) -> tuple[dict[str, Any], str] | None: ...

    def list(self) -> list[tuple[str, dict[str, Any], str]]: ...

    def insert(self, org_id: str, values: Mapping[str, Any]) -> str: ...

    def replace(self, org_id: str, values: Mapping[str, Any], etag: str) -> str: ...

    def delete(self, org_id: str) -> bool: ...


class OrgExists(Conflict):
    """``add`` of an org that is registered already (use ``update``)."""


class UnknownOrg(LookupError):
    """No org with this id is registered."""


class OrgRegistry:
    def __init__(
        self,
        table: OrgTable,
        base: Settings,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._base = base
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, OrgRecord]] = {}
        self._lock = threading.Lock()

    # --- reads ------------------------------------------------------------------------------------------------
    def get(self, org_id: str) -> OrgRecord | None:
        key = org_id_of(org_id)
        found = self._table.get(key)
        return None if found is None else from_entity(key, found[0], found[1])

    def list(self) -> list[OrgRecord]:
        return sorted((from_entity(key, values, etag) for key, values, etag in self._table.list()), key=_by_name)

    def lookup(self, org_id: str) -> OrgRecord | None:
        """The row for routing, cached ``ORG_CACHE_SECONDS``; None when not registered (never cached: an org added
        a moment ago is found at once, on every instance)."""
        try:
            key = org_id_of(org_id)
        except ValueError:
            return None
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        record = self.get(key)
        with self._lock:
            if record is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = (now, record)
        return record

    def validate(self, record: OrgRecord) -> Settings:
        """The org's effective settings (secrets as placeholders); :class:`OrgConfigError` names what is wrong."""
        return org_settings(self._base, record)

    # --- writes (the operator commands) ---------------------------------------------------------------------
    def add(self, record: OrgRecord) -> OrgRecord:
        record = self._stamped(record)
        self.validate(record)
        try:
            etag = self._table.insert(record.org_id, to_entity(record))
        except Conflict:
            raise OrgExists(f"org {record.org_id} is registered already (use 'channel org update')") from None
        return self._remember(replace(record, etag=etag))

    def save(self, record: OrgRecord) -> OrgRecord:
        """Replace a row read earlier (its ETag: a concurrent change raises ``Conflict`` instead of being lost)."""
        if record.etag is None:
            raise ValueError("save() needs a record read from the registry (its ETag)")
        read_etag = record.etag
        record = self._stamped(record)
        self.validate(record)
        etag = self._table.replace(record.org_id, to_entity(record), read_etag)
        return self._remember(replace(record, etag=etag))

    def update(self, org_id: str, change: Callable[[OrgRecord], OrgRecord]) -> OrgRecord:
        current = self.get(org_id)
        if current is None:
            raise UnknownOrg(f"org {org_id_of(org_id)} is not registered (see 'channel org list')")
        return self.save(change(current))

    def remove(self, org_id: str) -> bool:
        key = org_id_of(org_id)
        removed = self._table.delete(key)
        with self._lock:
            self._cache.pop(key, None)
        return removed

    def _stamped(self, record: OrgRecord) -> OrgRecord:
        return replace(record, org_id=org_id_of(record.org_id), updated_at=datetime.now(UTC).isoformat())

    def _remember(self, record: OrgRecord) -> OrgRecord:
        with self._lock:
            self._cache[record.org_id] = (self._clock(), record)
        return record


def _by_name(record: OrgRecord) -> tuple[str, str]:
    return record.display_name.lower(), record.org_id
