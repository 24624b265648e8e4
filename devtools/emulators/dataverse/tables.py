"""Rows of a table through the Web API: retrieve, query, create (with deep insert), update, delete."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import customization, errors, odata, rules
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity, is_guid
from devtools.emulators.dataverse.request import Call, method_not_allowed

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

# deep insert: collection-valued navigation property -> (child table, the child's lookup column)
DEEP_INSERT: dict[str, dict[str, tuple[str, str]]] = {
    "customapi": {
        "CustomAPIRequestParameters": ("customapirequestparameter", "_customapiid_value"),
        "CustomAPIResponseProperties": ("customapiresponseproperty", "_customapiid_value"),
    },
}
_ENTITY_ID_RE = re.compile(r"\(([0-9a-f-]{36})\)$")


def created_id(response: Response) -> str | None:
    m = _ENTITY_ID_RE.search(response.header("OData-EntityId") or "")
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------------- reading
def shape(ent: Entity, key: str, select: list[str], formatted: bool) -> dict[str, Any]:
    row = ent.rows[key]
    out: dict[str, Any] = {"@odata.etag": f'W/"{ent.versions.get(key, 0)}"'}
    names = [c for c in select if c != ent.primary_key] if select else sorted(ent.columns - ent.write_only)
    labels = ent.formatted.get(key, {})
    for name in names:
        if formatted and name in labels:
            out[f"{name}@{odata.FORMATTED}"] = labels[name]
        out[name] = None if name in ent.write_only else row.get(name)
    out[ent.primary_key] = key
    return out


def context(emu: DataverseEmulator, ent: Entity, select: list[str], single: bool) -> str:
    sel = f"({','.join(select)})" if select else ""
    return f"{emu.api_url}/$metadata#{ent.entity_set_name}{sel}" + ("/$entity" if single else "")


def retrieve(emu: DataverseEmulator, ent: Entity, key: str, query: dict[str, str], prefer: str) -> Response:
    select = odata.parse_select(ent, query)
    if key not in ent.rows:
        raise not_found(ent, key)
    formatted, applied = odata.wants_formatted(prefer)
    body = {"@odata.context": context(emu, ent, select, True), **shape(ent, key, select, formatted)}
    return emu.json_response(200, body, [*applied, ("ETag", body["@odata.etag"])])


def query_rows(emu: DataverseEmulator, ent: Entity, query: dict[str, str], prefer: str) -> Response:
    select = odata.parse_select(ent, query)
    predicate = odata.parse_filter(ent, query.get("$filter", ""), query)
    formatted, applied = odata.wants_formatted(prefer)
    top = odata.parse_top(query)
    keys = [k for k in ent.rows if predicate(k, ent.rows[k])]
    if top is not None:
        keys = keys[:top]
    value = [shape(ent, k, select, formatted) for k in keys]
    return emu.json_response(200, {"@odata.context": context(emu, ent, select, False), "value": value}, applied)


def not_found(ent: Entity, key: str) -> DataverseError:
    return DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"{ent.logical_name} With Id = {key} Does Not Exist")


# ---------------------------------------------------------------------------------------------------- writing
def apply_body(ent: Entity, body: dict[str, Any]) -> dict[str, Any]:
    """The stored values a create/update body means (lookups bound with ``@odata.bind`` become ``_x_value``)."""
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@"):
            continue
        if name.endswith("@odata.bind"):
            nav = name[: -len("@odata.bind")]
            column = ent.navigations.get(nav, f"_{nav.lower()}_value")
            if column not in ent.columns or (ent.strict_navigations and nav not in ent.navigations):
                raise errors.undeclared_navigation(ent.entity_set_name, nav)
            if value is None:
                values[column] = None
                continue
            m = re.search(r"\(([0-9a-fA-F-]{36})\)\s*$", str(value))
            if not m:
                raise DataverseError(400, errors.ODATA, f"Invalid entity reference '{value}' for '{name}'.")
            values[column] = m.group(1).lower()
            continue
        if "@" in name:
            continue
        if name.startswith("_") and name.endswith("_value"):
            raise DataverseError(
                400,
                errors.BAD_URI,
                "CRM do not support direct update of Entity Reference properties, Use Navigation properties instead.",
            )
        if name != ent.primary_key and name not in ent.columns:
            raise errors.invalid_property(ent.entity_set_name, ent.logical_name, name)
        values[name] = value
    return values


def create(emu: DataverseEmulator, ent: Entity, body: dict[str, Any], prefer: str) -> Response:
    emu.strict.check(ent, body, create=True)
    values = apply_body(ent, body)
    key_value = values.pop(ent.primary_key, None)
    if key_value is not None and (not isinstance(key_value, str) or not is_guid(key_value)):
        raise DataverseError(
            400, errors.ODATA, f"Cannot convert the literal '{key_value}' to the expected type 'Edm.Guid'."
        )
    key = (key_value or str(uuid.uuid4())).lower()
    if key in ent.rows:
        raise DataverseError(412, errors.DUPLICATE, "A record with matching key values already exists.")
    rules.validate_row(emu, ent, values, key)
    emu.store.put(ent, key, values)
    rules.after_write(emu, ent, key)
    location = emu.entity_id_url(ent, key)
    if "return=representation" in prefer:
        formatted, applied = odata.wants_formatted(prefer)
        out = {"@odata.context": context(emu, ent, [], True), **shape(ent, key, [], formatted)}
        headers = [("OData-EntityId", location), ("Location", location), ("ETag", out["@odata.etag"]), *applied]
        return emu.json_response(201, out, headers)
    return emu.no_content([("OData-EntityId", location), ("Location", location)])


def create_deep(emu: DataverseEmulator, ent: Entity, body: dict[str, Any], prefer: str) -> Response:
    """Create a row; for tables in ``DEEP_INSERT`` also its related rows from the same body (atomically)."""
    children = {nav: body.pop(nav) for nav in list(body) if nav in DEEP_INSERT.get(ent.logical_name, {})}
    if not children:
        return create(emu, ent, body, prefer)
    snapshot = emu.store.snapshot()
    try:
        parent = created_id(create(emu, ent, body, ""))
        assert parent is not None
        for nav, items in children.items():
            table, lookup = DEEP_INSERT[ent.logical_name][nav]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise DataverseError(400, errors.ODATA, f"'{nav}' must be an array of objects (deep insert).")
            child = emu.store.entities[table]
            for item in items:
                emu.strict.check(child, item, create=True, implied=(lookup,))
                values = apply_body(child, item)
                values[lookup] = parent
                key = str(values.pop(child.primary_key, None) or uuid.uuid4()).lower()
                rules.validate_row(emu, child, values, key)
                emu.store.put(child, key, values)
    except DataverseError:
        emu.store.restore(snapshot)
        raise
    if "return=representation" in prefer:
        return retrieve(emu, ent, parent, {}, prefer)
    location = emu.entity_id_url(ent, parent)
    return emu.no_content([("OData-EntityId", location), ("Location", location)])


def update(emu: DataverseEmulator, ent: Entity, key: str, call: Call) -> Response:
    body = call.json_body()
    if_match = call.headers.get("if-match", "").strip()
    if_none_match = call.headers.get("if-none-match", "").strip()
    if key not in ent.rows:
        if emu.upsert_on_patch and not if_match:
            emu.strict.check(ent, body, create=True)
            values = apply_body(ent, body)
            values.pop(ent.primary_key, None)
            emu.store.put(ent, key, values)
            return emu.no_content([("OData-EntityId", emu.entity_id_url(ent, key))])
        raise not_found(ent, key)
    if if_none_match == "*":
        raise DataverseError(412, errors.DUPLICATE, "A record with matching key values already exists.")
    current = f'W/"{ent.versions.get(key, 0)}"'
    if if_match and if_match not in ("*", current):
        raise DataverseError(
            412,
            errors.CONCURRENCY_VERSION,
            "The version of the existing record doesn't match the RowVersion property provided.",
        )
    emu.strict.check(ent, body, create=False)
    values = apply_body(ent, body)
    values.pop(ent.primary_key, None)
    rules.check_immutable(ent, key, values)
    rules.validate_row(emu, ent, {**ent.rows[key], **values}, key)
    ent.rows[key].update(values)
    ent.versions[key] = emu.store.next_version()
    rules.after_write(emu, ent, key)
    location = emu.entity_id_url(ent, key)
    if "return=representation" in call.prefer:
        formatted, applied = odata.wants_formatted(call.prefer)
        out = {"@odata.context": context(emu, ent, [], True), **shape(ent, key, [], formatted)}
        return emu.json_response(200, out, [("OData-EntityId", location), *applied])
    return emu.no_content([("OData-EntityId", location)])


def delete(emu: DataverseEmulator, ent: Entity, key: str) -> Response:
    if key not in ent.rows:
        raise not_found(ent, key)
    del ent.rows[key]
    ent.formatted.pop(key, None)
    ent.versions.pop(key, None)
    return emu.no_content()


# ---------------------------------------------------------------------------------------------------- routes
def _entity_of(emu: DataverseEmulator, set_name: str) -> Entity:
    ent = emu.store.by_set(set_name)
    if ent is None:
        raise DataverseError(404, errors.BAD_URI, f"Resource not found for the segment '{set_name}'.")
    return ent


def collection(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    """``GET`` (query) or ``POST`` (create) on ``<entityset>``."""
    ent = _entity_of(emu, match.group("set"))
    if call.method == "GET":
        return query_rows(emu, ent, call.query, call.prefer)
    if call.method != "POST":
        raise method_not_allowed(call.method)
    solution_id = customization.solution_of(emu, call.headers)
    response = create_deep(emu, ent, call.json_body(), call.prefer)
    customization.record_component(emu, solution_id, ent, created_id(response))
    return response


def row(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    """``GET`` / ``PATCH`` / ``DELETE`` on ``<entityset>(<id>)``."""
    ent = _entity_of(emu, match.group("set"))
    key = match.group("key").strip()
    if not is_guid(key):
        raise DataverseError(
            400,
            errors.BAD_URI,
            f"Bad Request - Error in query syntax. The key value '{key}' of '{ent.entity_set_name}' "
            "is not a valid GUID.",
        )
    key = key.lower()
    if call.method == "GET":
        return retrieve(emu, ent, key, call.query, call.prefer)
    if call.method == "PATCH":
        return update(emu, ent, key, call)
    if call.method == "DELETE":
        return delete(emu, ent, key)
    raise method_not_allowed(call.method)
