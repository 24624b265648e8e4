"""Row rules Dataverse enforces beyond column metadata (business logic of the customization and RTJ tables)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from devtools.emulators.dataverse import errors, rtj
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator


def check_immutable(ent: Entity, key: str, values: dict[str, Any]) -> None:
    current = ent.rows[key]
    changed = [c for c in rtj.IMMUTABLE.get(ent.logical_name, ()) if c in values and values[c] != current.get(c)]
    if changed:
        raise DataverseError(
            400,
            errors.INVALID_ARGUMENT,
            f"{', '.join(changed)} of {ent.logical_name} cannot be changed after it is created.",
        )


def validate_row(emu: DataverseEmulator, ent: Entity, row: dict[str, Any], key: str | None = None) -> None:
    """Rules Dataverse enforces on the customization tables (others: no checks)."""
    problems: list[str] = []
    if ent.logical_name == "serviceendpoint":
        problems = _service_endpoint(row)
    elif ent.logical_name == "sdkmessageprocessingstep":
        problems = _step(emu, row)
    elif ent.logical_name in rtj.RTJ_TABLES:
        problems = rtj.validate_rtj_row(emu, ent, row, key)
    elif ent.logical_name == "webresource":
        if row.get("webresourcetype") not in range(1, 13):
            problems.append("'webresourcetype' must be 1-12")
        try:
            base64.b64decode(str(row.get("content") or ""), validate=True)
        except (binascii.Error, ValueError):
            problems.append("'content' must be base64")
    if problems:
        raise DataverseError(400, errors.INVALID_ARGUMENT, f"Invalid {ent.logical_name}: " + "; ".join(problems) + ".")


def _service_endpoint(row: dict[str, Any]) -> list[str]:
    problems = [
        f"'{c}' is required" for c in ("name", "contract", "path", "solutionnamespace") if row.get(c) in (None, "")
    ]
    if row.get("contract") not in (None, *range(1, 12)):
        problems.append("'contract' must be 1-11")
    if row.get("messageformat") not in (None, 1, 2, 3):
        problems.append("'messageformat' must be 1 (Binary XML), 2 (Json) or 3 (Text XML)")
    if row.get("authtype") == 2 and not row.get("saskeyname"):
        problems.append("SAS key authentication (authtype 2) needs 'saskeyname'")
    if row.get("namespaceformat") == 2 and not str(row.get("namespaceaddress", "")).startswith("sb://"):
        problems.append("'namespaceaddress' must be sb://<namespace>.servicebus.windows.net/")
    return problems


def _step(emu: DataverseEmulator, row: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    tables = emu.store.entities
    if row.get("mode") == 1 and row.get("stage") != 40:
        problems.append("asynchronous steps can only be registered in PostOperation (stage 40)")
    for column, table in (
        ("_sdkmessageid_value", "sdkmessage"),
        ("_eventhandler_value", None),
        ("_sdkmessagefilterid_value", "sdkmessagefilter"),
    ):
        value = row.get(column)
        if value is None:
            if column != "_sdkmessagefilterid_value":
                problems.append(f"'{column}' is required")
            continue
        candidates = [table] if table else ["serviceendpoint", "plugintype"]
        if not any(t in tables and value in tables[t].rows for t in candidates):
            problems.append(f"'{column}' {value} does not exist")
    handler = row.get("_eventhandler_value")
    endpoints = tables.get("serviceendpoint")
    if endpoints is not None and handler in endpoints.rows and row.get("mode") != 1:
        problems.append("service endpoints support only asynchronous steps (mode 1)")
    return problems


def after_write(emu: DataverseEmulator, ent: Entity, key: str) -> None:
    if ent.logical_name == "serviceendpoint":
        row = ent.rows[key]
        row["issaskeyset"] = bool(row.get("saskey"))
        row["issastokenset"] = bool(row.get("sastoken"))
