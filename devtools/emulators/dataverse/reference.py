"""Microsoft's published table metadata, read in place from ``devtools.reference_data.dataverse_tables_dir()``.

One ``<logical name>.json`` per table (extracted from the generated table references in MicrosoftDocs; see
docs/reference-data.md). A file without columns (the page's column list was not excerpted) covers nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.reference_data import dataverse_tables_dir

LOOKUP_TYPES = {"Lookup", "Owner", "Customer"}


@dataclass(frozen=True)
class Column:
    logical_name: str
    type: str | None  # None when the page listed the column without its details
    required_level: str | None
    valid_for_create: bool
    valid_for_update: bool
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    options: tuple[int, ...] = ()
    targets: tuple[str, ...] = ()
    has_default: bool = False
    default_option: int | None = None


@dataclass(frozen=True)
class Navigation:
    name: str  # single-valued navigation property (exact case)
    column: str  # referencing attribute
    referenced: str  # referenced table ("owner" for the owner lookups)


@dataclass(frozen=True)
class Table:
    logical_name: str
    entity_set_name: str
    primary_id: str
    columns: dict[str, Column]
    columns_complete: bool
    navigations: dict[str, Navigation]
    source: str  # the file it was read from


def _column(raw: dict[str, Any]) -> Column:
    options = raw.get("options") or {}
    default = raw.get("default_form_value")
    return Column(
        logical_name=str(raw["logical_name"]),
        type=raw.get("type"),
        required_level=raw.get("required_level"),
        valid_for_create=bool(raw.get("valid_for_create")),
        valid_for_update=bool(raw.get("valid_for_update")),
        max_length=raw.get("max_length"),
        min_value=raw.get("min_value"),
        max_value=raw.get("max_value"),
        options=tuple(sorted(int(k) for k in options)),
        targets=tuple(raw.get("targets") or ()),
        has_default="default_value" in raw,
        default_option=default if isinstance(default, int) and not isinstance(default, bool) else None,
    )


def parse_table(raw: dict[str, Any], source: str) -> Table:
    navigations = {
        str(rel["navigation_property"]): Navigation(
            str(rel["navigation_property"]), str(rel["referencing_attribute"]), str(rel["referenced_entity"])
        )
        for rel in raw.get("many_to_one") or []
        if rel.get("navigation_property")
    }
    return Table(
        logical_name=str(raw["logical_name"]),
        entity_set_name=str(raw.get("entity_set_name") or ""),
        primary_id=str(raw.get("primary_id") or f"{raw['logical_name']}id"),
        columns={name: _column(col) for name, col in (raw.get("columns") or {}).items()},
        columns_complete=bool(raw.get("columns_complete")),
        navigations=navigations,
        source=source,
    )


_CACHE: dict[tuple[str, int], Table | None] = {}


class ReferenceTables:
    """The table metadata in one folder (``CHANNEL_REFERENCE_DATA`` / ``CHANNEL_DATAVERSE_METADATA``)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else dataverse_tables_dir()

    def table(self, logical_name: str) -> Table | None:
        """The table's published metadata, or None when the folder has no file (or no columns) for it."""
        path = self.directory / f"{logical_name}.json"
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return None
        key = (str(path), stamp)
        if key not in _CACHE:
            table = parse_table(json.loads(path.read_text(encoding="utf-8")), str(path))
            _CACHE[key] = table if table.columns else None
        return _CACHE[key]

    def column_names(self, logical_name: str) -> frozenset[str]:
        table = self.table(logical_name)
        return frozenset(table.columns) if table is not None else frozenset()

    def covered(self) -> list[str]:
        """Logical names of the tables with column metadata in the folder."""
        return sorted(p.stem for p in self.directory.glob("*.json") if self.table(p.stem) is not None)
