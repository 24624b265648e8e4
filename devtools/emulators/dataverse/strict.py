"""Strict writes: every create/update body is checked against Microsoft's published metadata of its table (when the
reference data has the table) or against the metadata the emulator holds for the tables and columns it created
through its customization endpoints. Rejections carry Dataverse's codes and messages (see ``errors``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.models import Entity, Store, is_guid
from devtools.emulators.dataverse.reference import LOOKUP_TYPES, Column, ReferenceTables, Table

# A column on a Microsoft table that the reference data lacks is accepted only when it is a custom column the org
# declares (publisher prefix + "_", not one of Microsoft's own prefixes).
_CUSTOM_RE = re.compile(r"^(?P<prefix>[a-z][a-z0-9]{1,7})_[a-z0-9_]+$")
_MICROSOFT_PREFIXES = {"msdyn", "msdyncrm", "mscrm", "adx", "msfp", "mspp", "msevtmgt", "msdynmkt"}
# Required columns the platform fills itself although the published RequiredLevel says otherwise.
_PLATFORM_FILLED = {
    ("sdkmessageprocessingstep", "plugintypeid"),  # derived from eventhandler
    ("sdkmessageprocessingstep", "sdkmessageprocessingstepsecureconfigid"),  # optional secure configuration
}
_REQUIRED_LEVELS = ("ApplicationRequired", "SystemRequired")
_BIND_RE = re.compile(r"(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<id>[0-9a-fA-F-]{36})\)\s*$")
_EDM = {"Boolean": "Edm.Boolean", "Integer": "Edm.Int32", "BigInt": "Edm.Int64", "Uniqueidentifier": "Edm.Guid"}


def is_custom_column(name: str) -> bool:
    m = _CUSTOM_RE.match(name)
    return m is not None and m.group("prefix") not in _MICROSOFT_PREFIXES


class StrictValidator:
    """Checks create/update bodies before they are applied."""

    def __init__(self, reference: ReferenceTables, store: Store) -> None:
        self.reference = reference
        self.store = store

    def table(self, logical_name: str) -> Table | None:
        return self.reference.table(logical_name)

    def check(self, ent: Entity, body: dict[str, Any], *, create: bool, implied: Iterable[str] = ()) -> None:
        """Raise a ``DataverseError`` for what a real org rejects; ``implied``: lookups set by the caller."""
        meta = self.table(ent.logical_name)
        provided = {_plain(c) for c in implied}
        for name, value in body.items():
            if name.startswith("@"):
                continue
            if name.endswith("@odata.bind"):
                nav = name[: -len("@odata.bind")]
                column = self._check_bind(meta, ent, nav, value, create)
                if column:
                    provided.add(column)
                continue
            if "@" in name or (name.startswith("_") and name.endswith("_value")):
                continue  # annotations; lookups written as values are refused when the body is applied
            provided.add(name)
            col = meta.columns.get(name) if meta else None
            if col is not None:
                self._check_column(ent, col, value, create)
                ent.columns.add(name)  # the org has this column: it is readable once written
                continue
            declared_custom = name in ent.columns and is_custom_column(name)
            if meta is not None and meta.columns_complete and not declared_custom and name != ent.primary_key:
                raise errors.invalid_property(ent.entity_set_name, ent.logical_name, name)
            self._check_declared(ent, name, value)
        if create:
            self._check_required(meta, ent, provided)

    # -------------------------------------------------------------------------------------------- columns
    def _check_column(self, ent: Entity, col: Column, value: Any, create: bool) -> None:
        _check_validity(ent, col, create)
        if value is None or col.type is None:
            return
        set_name, kind = ent.entity_set_name, col.type
        if kind in ("String", "Memo"):
            if not isinstance(value, str):
                raise errors.cannot_convert(set_name, value, "Edm.String")
            if col.max_length is not None and len(value) > col.max_length:
                raise errors.string_too_long(ent.logical_name, col.logical_name, col.max_length)
        elif kind == "Boolean":
            if not isinstance(value, bool):
                raise errors.cannot_convert(set_name, value, "Edm.Boolean")
        elif kind in ("Integer", "BigInt"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise errors.cannot_convert(set_name, value, _EDM[kind])
            low = col.min_value if col.min_value is not None else value
            high = col.max_value if col.max_value is not None else value
            if not low <= value <= high:
                raise errors.number_out_of_range(ent.logical_name, col.logical_name, value, low, high)
        elif kind in ("Picklist", "State", "Status"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise errors.cannot_convert(set_name, value, "Edm.Int32")
            if col.options and value not in col.options:
                raise errors.option_out_of_range(ent.logical_name, col.logical_name, value, col.options)
        elif kind == "Uniqueidentifier":
            if not isinstance(value, str) or not is_guid(value):
                raise errors.cannot_convert(set_name, value, "Edm.Guid")
        elif kind in LOOKUP_TYPES:
            raise errors.undeclared_navigation(set_name, col.logical_name)

    def _check_declared(self, ent: Entity, name: str, value: Any) -> None:
        """A column the emulator created (``POST …/Attributes``, ``POST EntityDefinitions``): its own definition."""
        definition = ent.attribute_definitions.get(name)
        if definition is None or value is None:
            return
        kind = definition.get("AttributeType")
        if kind in ("String", "Memo"):
            if not isinstance(value, str):
                raise errors.cannot_convert(ent.entity_set_name, value, "Edm.String")
            length = definition.get("MaxLength")
            if isinstance(length, int) and len(value) > length:
                raise errors.string_too_long(ent.logical_name, name, length)
        elif kind == "Boolean" and not isinstance(value, bool):
            raise errors.cannot_convert(ent.entity_set_name, value, "Edm.Boolean")
        elif kind == "Integer" and (isinstance(value, bool) or not isinstance(value, int)):
            raise errors.cannot_convert(ent.entity_set_name, value, "Edm.Int32")

    def _check_required(self, meta: Table | None, ent: Entity, provided: set[str]) -> None:
        missing: list[str] = []
        if meta is not None and meta.columns_complete:  # a partial page cannot say what the platform fills
            for col in meta.columns.values():
                if (
                    col.required_level in _REQUIRED_LEVELS
                    and col.valid_for_create
                    and col.logical_name not in provided
                    and col.logical_name != meta.primary_id
                    and (ent.logical_name, col.logical_name) not in _PLATFORM_FILLED
                    and _needs_value(col)
                ):
                    missing.append(col.logical_name)
        elif meta is None:
            for name, definition in ent.attribute_definitions.items():
                level = (definition.get("RequiredLevel") or {}).get("Value")
                if level in _REQUIRED_LEVELS and name not in provided:
                    missing.append(name)
        if missing:
            raise errors.required_missing(ent.logical_name, sorted(missing))

    # -------------------------------------------------------------------------------------------- lookups
    def _check_bind(self, meta: Table | None, ent: Entity, nav: str, value: Any, create: bool) -> str | None:
        """The lookup column a ``nav@odata.bind`` sets, after checking it is a lookup to the bound table."""
        if meta is None:
            return None
        navigation = meta.navigations.get(nav)
        declared = ent.navigations.get(nav)
        column = navigation.column if navigation else _plain(declared) if declared else nav.lower()
        col = meta.columns.get(column)
        if col is None:
            if navigation is None and meta.columns_complete and not declared:
                raise errors.undeclared_navigation(ent.entity_set_name, nav)
            return column
        if col.type is not None and col.type not in LOOKUP_TYPES:
            raise errors.undeclared_navigation(ent.entity_set_name, nav)
        _check_validity(ent, col, create)
        targets = col.targets
        if navigation is not None and navigation.referenced != "owner":
            targets = (navigation.referenced,)
        bound = self._bound_table(value)
        if value is not None and targets and bound is not None and bound not in targets:
            raise errors.wrong_lookup_target(ent.entity_set_name, nav, bound, targets)
        return column

    def _bound_table(self, value: Any) -> str | None:
        m = _BIND_RE.search(str(value))
        if not m:
            return None
        ent = self.store.by_set(m.group("set"))
        return ent.logical_name if ent is not None else None


def _check_validity(ent: Entity, col: Column, create: bool) -> None:
    if create and not col.valid_for_create:
        raise errors.not_valid_for(ent.logical_name, col.logical_name, "create")
    if not create and not col.valid_for_update:
        raise errors.not_valid_for(ent.logical_name, col.logical_name, "update")


def _plain(column: str) -> str:
    """``_x_value`` -> ``x``."""
    return column[1:-6] if column.startswith("_") and column.endswith("_value") else column


def _needs_value(col: Column) -> bool:
    """A required column the caller must send: no default and not filled by the platform."""
    if col.has_default or col.type in (None, "Owner", "EntityName", "ManagedProperty", "State", "Status"):
        return False
    if col.type in ("Picklist",):
        return col.default_option is None or col.default_option not in col.options
    return col.type in ("String", "Memo", "Lookup", "Customer", "Integer", "BigInt", "DateTime")
