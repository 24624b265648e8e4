"""The column table provisioning writes by (provisioning/tables.py), checked against Microsoft's published table
metadata (../shared/reference-data, located by devtools.reference_data; read in place, never copied), and every row
write of full provisioning runs checked against the column table."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from devtools.reference_data import dataverse_tables_dir
from provisioning.tables import BINDS, COLUMNS, DEEP_INSERTS, ColumnError, check_row

from .conftest import ENTRA, PLUGIN_TYPE_ID, RELAY_URL, RTJ_ARGS, SAS_KEY, RunResult

TEXT_TYPES = {"String", "Memo"}
# Tables provisioning writes that the shared reference data does not hold (yet): their limits come from Microsoft's
# table reference pages (powerapps-docs reference/entities/managedidentity.md, pluginassembly.md) by hand.
NOT_IN_REFERENCE_DATA = {"managedidentity", "pluginassembly", "systemform"}


@cache
def _tables_dir() -> Path:
    return dataverse_tables_dir()  # ReferenceDataMissing says how to point at the data


def metadata(table: str) -> dict[str, Any] | None:
    path = _tables_dir() / f"{table}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def test_the_tables_missing_from_the_reference_data_are_exactly_the_listed_ones() -> None:
    missing = {table for table in COLUMNS if metadata(table) is None}
    assert missing == NOT_IN_REFERENCE_DATA  # a table added to the reference data must be checked below


@pytest.mark.parametrize("table", sorted(set(COLUMNS) - NOT_IN_REFERENCE_DATA))
def test_every_column_and_max_length_matches_microsofts_metadata(table: str) -> None:
    meta = metadata(table)
    assert meta is not None
    problems = []
    for column, limit in COLUMNS[table].items():
        published = meta["columns"].get(column)
        if published is None:
            if meta.get("columns_complete"):
                problems.append(f"{column}: not a column of {table}")
            continue  # a partially cached table (systemuser) does not prove an error
        if not (published.get("valid_for_create") or published.get("valid_for_update")):
            problems.append(f"{column}: not writable")
        is_text = published.get("type") in TEXT_TYPES
        if limit is None and is_text:
            problems.append(f"{column}: a text column (MaxLength {published.get('max_length')}) listed without a limit")
        if limit is not None and (not is_text or published.get("max_length") != limit):
            problems.append(f"{column}: limit {limit}, published {published.get('type')} {published.get('max_length')}")
    assert problems == []


# Tables whose cached reference page lists no navigation properties: their binds are checked by the emulator only.
RELATIONSHIPS_NOT_IN_REFERENCE_DATA = {"customapiresponseproperty", "solution", "systemuser"}


def test_every_bound_lookup_is_a_published_navigation_property() -> None:
    unlisted = set()
    for table in sorted(set(BINDS) - NOT_IN_REFERENCE_DATA):
        meta = metadata(table)
        assert meta is not None
        navigations = {r.get("navigation_property") for r in meta.get("many_to_one") or []}
        if not navigations:
            unlisted.add(table)
            continue
        assert BINDS[table] <= navigations, (table, BINDS[table] - navigations)
    assert unlisted == RELATIONSHIPS_NOT_IN_REFERENCE_DATA


def test_deep_insert_navigation_properties_are_published() -> None:
    for table, children in DEEP_INSERTS.items():
        meta = metadata(table)
        assert meta is not None
        published = {r.get("navigation_property"): r.get("referencing_entity") for r in meta.get("one_to_many") or []}
        for navigation, child in children.items():
            assert published.get(navigation) == child, (table, navigation)


def test_check_row_names_table_and_column() -> None:
    with pytest.raises(ColumnError, match=r"msdyn_channeldefinition\.msdyn_description would be 101 characters"):
        check_row("msdyn_channeldefinition", {"msdyn_description": "x" * 101})
    with pytest.raises(ColumnError, match=r"customapiresponseproperty\.description would be 101"):
        check_row("customapi", {"CustomAPIResponseProperties": [{"description": "x" * 101}]})
    with pytest.raises(ColumnError, match=r"customapi\.bogus is not a column"):
        check_row("customapi", {"bogus": "x"})
    with pytest.raises(ColumnError, match=r"customapi\.Bogus is not a lookup"):
        check_row("customapi", {"Bogus@odata.bind": "/x(1)"})
    check_row("msdyn_channeldefinition", {"msdyn_description": "x" * 100, "@odata.type": "x"})
    with pytest.raises(ColumnError, match="would be 102 characters"):  # .NET counts UTF-16 code units
        check_row("msdyn_channeldefinition", {"msdyn_description": "x" * 98 + "📱📱"})


Run = Callable[..., RunResult]


def _row_writes(org: DataverseEmulator) -> list[tuple[str, str, Any]]:
    sets = {ent_set: table for table, ent_set in _entity_sets().items()}
    found = []
    for op in org.operations:
        entity_set = op.path.split("(", 1)[0]
        if op.method in ("POST", "PATCH") and entity_set in sets:
            found.append((op.method, sets[entity_set], op.body))
    return found


def _entity_sets() -> dict[str, str]:
    from provisioning import tables

    return {t.logical_name: t.entity_set for t in vars(tables).values() if isinstance(t, tables.Table)}


def test_every_row_a_full_run_writes_fits_the_column_table_and_microsofts_metadata(
    rtj_org: DataverseEmulator, run: Run
) -> None:
    """Outbound + RTJ (entra, then secret) + application user: every written column is known, writable and fits.
    The first run adds --whatsapp (template columns, the main form, template message parts on a custom channel)."""
    assert set(_entity_sets()) == set(COLUMNS)
    code, out = run(
        "--sas-key",
        SAS_KEY,
        "--rtj",
        "--relay-url",
        RELAY_URL,
        *ENTRA,
        "--create-app-user",
        PLUGIN_TYPE_ID,
        "--whatsapp",
    )
    assert code == 0, out
    code, out = run("--rtj", "--relay-secret", "s3cr3t-value-that-is-long-enough-0123", base=RTJ_ARGS)
    assert code == 0, out
    written: set[tuple[str, str]] = set()

    def record(method: str, table: str, body: dict[str, Any]) -> None:
        meta = metadata(table)
        for column, value in body.items():
            child = DEEP_INSERTS.get(table, {}).get(column)
            if child is not None:
                for item in value:
                    record(method, child, item)
                continue
            if "@" in column:
                continue
            written.add((table, column))
            published = (meta or {}).get("columns", {}).get(column)
            if published is not None:
                key = "valid_for_create" if method == "POST" else "valid_for_update"
                assert published.get(key), (method, table, column)

    for method, table, body in _row_writes(rtj_org):
        check_row(table, body)
        record(method, table, body)
    assert {t for t, _ in written} == set(COLUMNS) - {"pluginassembly"}  # the assembly only gets a bind
