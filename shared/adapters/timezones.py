"""Dataverse time zone codes → Windows zone ids, read from the ``timezonedefinitions`` table and cached.

``GET timezonedefinitions?$select=timezonecode,standardname,retiredorder`` (about 140 rows, one request per process
and day); rows with ``retiredorder`` above 0 are retired entries and skipped. The table is read-only system data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import requests

ENTITY_SET = "timezonedefinitions"
TTL_SECONDS = 24 * 3600.0


class _Client(Protocol):
    def request(self, method: str, path: str, *, operation: str, params: Any = None) -> requests.Response: ...


class DataverseTimeZones:
    """``standard_name(code)``: the ``standardname`` of a Dataverse time zone code, or None."""

    def __init__(self, client: _Client, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._names: dict[int, str] | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self.loads = 0

    def __call__(self, code: int) -> str | None:
        with self._lock:
            if self._names is None or self._clock() - self._loaded_at > TTL_SECONDS:
                self._names = self._load()
                self._loaded_at = self._clock()
            return self._names.get(code)

    def _load(self) -> dict[int, str]:
        response = self._client.request(
            "GET",
            ENTITY_SET,
            params={"$select": "timezonecode,standardname,retiredorder"},
            operation="read timezonedefinitions",
        )
        self.loads += 1
        names: dict[int, str] = {}
        for row in response.json().get("value", []):
            code, name = row.get("timezonecode"), row.get("standardname")
            if isinstance(code, int) and isinstance(name, str) and not row.get("retiredorder"):
                names[code] = name
        return names
