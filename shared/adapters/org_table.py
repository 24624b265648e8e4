"""The org registry table (``ORG_TABLE_NAME``, default ``channelorgs``): Azure Table Storage and in-memory.

One partition (``org``), RowKey = organization id. Connects like the state table (``AzureWebJobsStorage`` or its
identity-based forms); the table is created on first use.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Mapping
from typing import Any

from shared.ports import Conflict

PARTITION = "org"
_SYSTEM = ("PartitionKey", "RowKey", "Timestamp", "etag")


class TableOrgTable:
    def __init__(self, table_client: Any) -> None:
        self._table = table_client
        self._ready = False
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import ResourceExistsError

        with self._lock:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._table.create_table()
                self._ready = True

    @staticmethod
    def _values(entity: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entity.items() if k not in _SYSTEM}

    def get(self, org_id: str) -> tuple[dict[str, Any], str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            entity = self._table.get_entity(partition_key=PARTITION, row_key=org_id)
        except ResourceNotFoundError:
            return None
        return self._values(entity), str(entity.metadata["etag"])

    def list(self) -> list[tuple[str, dict[str, Any], str]]:
        self._ensure()
        entities = self._table.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
        return [(str(e["RowKey"]), self._values(e), str(e.metadata["etag"])) for e in entities]

    def insert(self, org_id: str, values: Mapping[str, Any]) -> str:
        from azure.core.exceptions import ResourceExistsError

        self._ensure()
        try:
            result = self._table.create_entity({"PartitionKey": PARTITION, "RowKey": org_id, **values})
        except ResourceExistsError:
            raise Conflict(f"org {org_id} exists") from None
        return str(result["etag"])

    def replace(self, org_id: str, values: Mapping[str, Any], etag: str) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        self._ensure()
        try:
            result = self._table.update_entity(
                {"PartitionKey": PARTITION, "RowKey": org_id, **values},
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise Conflict(f"org {org_id} changed since it was read") from None
        return str(result["etag"])

    def delete(self, org_id: str) -> bool:
        self._ensure()
        if self.get(org_id) is None:
            return False
        self._table.delete_entity(partition_key=PARTITION, row_key=org_id)
        return True


class MemoryOrgTable:
    """The same semantics in memory (unit tests, ``channel simulate``)."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[dict[str, Any], str]] = {}
        self._etags = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, org_id: str) -> tuple[dict[str, Any], str] | None:
        with self._lock:
            found = self._rows.get(org_id)
            return None if found is None else (dict(found[0]), found[1])

    def list(self) -> list[tuple[str, dict[str, Any], str]]:
        with self._lock:
            return [(key, dict(values), etag) for key, (values, etag) in self._rows.items()]

    def insert(self, org_id: str, values: Mapping[str, Any]) -> str:
        with self._lock:
            if org_id in self._rows:
                raise Conflict(f"org {org_id} exists")
            return self._put(org_id, values)

    def replace(self, org_id: str, values: Mapping[str, Any], etag: str) -> str:
        with self._lock:
            found = self._rows.get(org_id)
            if found is None or found[1] != etag:
                raise Conflict(f"org {org_id} changed since it was read")
            return self._put(org_id, values)

    def delete(self, org_id: str) -> bool:
        with self._lock:
            return self._rows.pop(org_id, None) is not None

    def _put(self, org_id: str, values: Mapping[str, Any]) -> str:
        etag = f'W/"{next(self._etags)}"'
        self._rows[org_id] = (dict(values), etag)
        return etag


def org_table(settings: Any, credential: Any = None) -> TableOrgTable:
    """The registry table in the state storage account (same connection settings as the state table)."""
    from azure.data.tables import TableClient

    name = settings.org_table_name
    if settings.storage_connection:
        return TableOrgTable(TableClient.from_connection_string(settings.storage_connection, table_name=name))
    endpoint = settings.storage_table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableOrgTable(TableClient(endpoint=endpoint.rstrip("/"), table_name=name, credential=credential))
