"""Azure Table Storage implementation of :class:`shared.ports.KeyValueStore` (the state table).

Connects with the host storage connection string (``AzureWebJobsStorage``, ``UseDevelopmentStorage=true`` for
Azurite) or, identity-based, with ``AzureWebJobsStorage__tableServiceUri`` / ``__accountName`` and the app's
credential. The table is created on first use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from shared.ports import Conflict

_SYSTEM = ("PartitionKey", "RowKey", "Timestamp", "etag")


class TableStore:
    def __init__(self, table_client: Any) -> None:
        self._table = table_client
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        *,
        table_name: str,
        connection_string: str | None,
        table_service_uri: str | None,
        account_name: str | None,
        credential: Any = None,
    ) -> TableStore:
        from azure.data.tables import TableClient

        if connection_string:
            client = TableClient.from_connection_string(connection_string, table_name=table_name)
        else:
            endpoint = table_service_uri or f"https://{account_name}.table.core.windows.net"
            client = TableClient(endpoint=endpoint.rstrip("/"), table_name=table_name, credential=credential)
        return cls(client)

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

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        try:
            entity = self._table.get_entity(partition_key=partition, row_key=row)
        except ResourceNotFoundError:
            return None
        return self._values(entity), str(entity.metadata["etag"])

    def insert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        from azure.core.exceptions import ResourceExistsError

        self._ensure()
        try:
            result = self._table.create_entity({"PartitionKey": partition, "RowKey": row, **values})
        except ResourceExistsError:
            raise Conflict(f"{partition}/{row} exists") from None
        return str(result["etag"])

    def replace(self, partition: str, row: str, values: Mapping[str, Any], etag: str) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        self._ensure()
        try:
            result = self._table.update_entity(
                {"PartitionKey": partition, "RowKey": row, **values},
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise Conflict(f"{partition}/{row} changed") from None
        return str(result["etag"])

    def upsert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        from azure.data.tables import UpdateMode

        self._ensure()
        result = self._table.upsert_entity(
            {"PartitionKey": partition, "RowKey": row, **values}, mode=UpdateMode.REPLACE
        )
        return str(result["etag"])

    def rows(self, partition: str) -> list[tuple[str, dict[str, Any], str]]:
        """Every row of one partition (the org registry's listing)."""
        self._ensure()
        entities = self._table.query_entities("PartitionKey eq @p", parameters={"p": partition})
        return [(str(e["RowKey"]), self._values(e), str(e.metadata["etag"])) for e in entities]

    def delete(self, partition: str, row: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        self._ensure()
        if self.get(partition, row) is None:
            return False
        with contextlib.suppress(ResourceNotFoundError):  # removed in between: removed all the same
            self._table.delete_entity(partition_key=partition, row_key=row)
        return True
