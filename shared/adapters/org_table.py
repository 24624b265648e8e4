"""The org registry table (``ORG_TABLE_NAME``, default ``channelorgs``): one partition (``org``) of a key-value
store, RowKey = organization id. In Azure a table in the state storage account (same connection settings as the
state table, created on first use); in memory for unit tests and local runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shared.adapters.memory import MemoryStore
from shared.adapters.table_store import TableStore

PARTITION = "org"


class _Rows(Protocol):
    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None: ...

    def insert(self, partition: str, row: str, values: Mapping[str, Any]) -> str: ...

    def replace(self, partition: str, row: str, values: Mapping[str, Any], etag: str) -> str: ...

    def rows(self, partition: str) -> list[tuple[str, dict[str, Any], str]]: ...

    def delete(self, partition: str, row: str) -> bool: ...


class OrgTableOver:
    """:class:`shared.orgs.registry.OrgTable` over one partition of a store (ETags and insert conflicts: theirs)."""

    def __init__(self, store: _Rows) -> None:
        self._store = store

    def get(self, org_id: str) -> tuple[dict[str, Any], str] | None:
        return self._store.get(PARTITION, org_id)

    def list(self) -> list[tuple[str, dict[str, Any], str]]:
        return self._store.rows(PARTITION)

    def insert(self, org_id: str, values: Mapping[str, Any]) -> str:
        return self._store.insert(PARTITION, org_id, values)

    def replace(self, org_id: str, values: Mapping[str, Any], etag: str) -> str:
        return self._store.replace(PARTITION, org_id, values, etag)

    def delete(self, org_id: str) -> bool:
        return self._store.delete(PARTITION, org_id)


class MemoryOrgTable(OrgTableOver):
    """In memory (unit tests, ``channel simulate``)."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())


def org_table(settings: Any, credential: Any = None) -> OrgTableOver:
    """The registry table in the state storage account (same connection settings as the state table)."""
    store = TableStore.from_settings(
        table_name=settings.org_table_name,
        connection_string=settings.storage_connection,
        table_service_uri=settings.storage_table_service_uri,
        account_name=settings.storage_account_name,
        credential=credential,
    )
    return OrgTableOver(store)
