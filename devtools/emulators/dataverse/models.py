"""The emulated org's data: tables (``Entity``) and their rows, held by one ``Store``; no HTTP here."""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(GUID_RE.match(value))


@dataclass(frozen=True)
class ActionParameter:
    """One parameter of an action: ``type`` is ``Edm.String`` or ``mscrm.<logicalname>``."""

    name: str
    type: str
    required: bool = True

    @property
    def entity(self) -> str | None:
        return self.type[len("mscrm.") :] if self.type.startswith("mscrm.") else None


@dataclass
class Operation:
    """One executed Web API operation (a plain request or one part of a $batch)."""

    method: str
    path: str  # path after /api/data/v9.2/
    query: str
    body: Any
    status: int
    in_batch: bool


@dataclass
class Entity:
    """One table: its keys, declared columns, rows (without the primary key), formatted values and row versions."""

    logical_name: str
    entity_set_name: str
    primary_key: str
    metadata_id: str
    columns: set[str] = field(default_factory=set)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    formatted: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # customization API (metadata, solution components); empty for tables added with add_entity
    navigations: dict[str, str] = field(default_factory=dict)  # single-valued navigation -> lookup column
    write_only: set[str] = field(default_factory=set)  # stored, never returned (e.g. serviceendpoint.saskey)
    attribute_types: dict[str, str] = field(default_factory=dict)  # column -> AttributeType
    attribute_ids: dict[str, str] = field(default_factory=dict)  # column -> attribute MetadataId
    schema_name: str | None = None
    strict_navigations: bool = False  # only the declared navigation property names (exact case) bind
    primary_name: str | None = None
    definition: dict[str, Any] | None = None  # the EntityMetadata body it was created with (POST EntityDefinitions)
    attribute_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # columns Microsoft's published metadata lists for this table: readable ($select, $filter) like declared ones
    reference_columns: frozenset[str] = frozenset()

    def has_column(self, name: str) -> bool:
        return name == self.primary_key or name in self.columns or name in self.reference_columns


class Store:
    """All tables of the org, a row-version counter and the lock every reader and writer holds."""

    def __init__(self, reference_columns: Callable[[str], frozenset[str]] = lambda name: frozenset()) -> None:
        self.entities: dict[str, Entity] = {}
        self._reference_columns = reference_columns
        self.lock = threading.RLock()
        self._version = 1000

    def next_version(self) -> int:
        self._version += 1
        return self._version

    def add_entity(self, logical_name: str, entity_set_name: str, primary_key: str) -> Entity:
        with self.lock:
            ent = self.entities.get(logical_name)
            if ent is not None:
                ent.entity_set_name = entity_set_name
                ent.primary_key = primary_key
                return ent
            ent = Entity(
                logical_name=logical_name,
                entity_set_name=entity_set_name,
                primary_key=primary_key,
                metadata_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/{logical_name}")),
                reference_columns=self._reference_columns(logical_name),
            )
            self.entities[logical_name] = ent
            return ent

    def entity(self, logical_name: str) -> Entity:
        try:
            return self.entities[logical_name]
        except KeyError:
            raise KeyError(f"entity {logical_name!r} not registered; call add_entity first") from None

    def by_set(self, set_name: str) -> Entity | None:
        for ent in self.entities.values():
            if ent.entity_set_name == set_name:
                return ent
        return None

    def put(self, ent: Entity, key: str, values: dict[str, Any], formatted: dict[str, str] | None = None) -> None:
        """Insert or replace a row (a new version)."""
        ent.rows[key] = values
        ent.formatted[key] = dict(formatted or {})
        ent.versions[key] = self.next_version()

    def insert(self, logical_name: str, values: dict[str, Any]) -> str:
        """Insert a row the org makes itself (views, forms, privileges, solution components); returns its id."""
        key = str(uuid.uuid4())
        self.put(self.entities[logical_name], key, values)
        return key

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy({k: (e.rows, e.formatted, e.versions) for k, e in self.entities.items()})

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name, (rows, formatted, versions) in snapshot.items():
            ent = self.entities.get(name)
            if ent is not None:
                ent.rows, ent.formatted, ent.versions = rows, formatted, versions


def plural(logical_name: str) -> str:
    """Dataverse's usual entity set name for a new table (the real one is read back from metadata)."""
    if logical_name.endswith(("s", "x", "ch", "sh")):
        return logical_name + "es"
    if logical_name.endswith("y") and logical_name[-2:-1] not in ("a", "e", "i", "o", "u"):
        return logical_name[:-1] + "ies"
    return logical_name + "s"
