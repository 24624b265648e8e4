"""OData query options the emulator understands: ``$select``, ``$top``, ``$filter`` (``eq``/``ne`` joined by ``and``,
``Microsoft.Dynamics.CRM.In``), parameter aliases and the formatted-values preference. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from devtools.emulators.dataverse import errors
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity, is_guid

FORMATTED = "OData.Community.Display.V1.FormattedValue"
IN_RE = re.compile(
    r"^Microsoft\.Dynamics\.CRM\.In\(\s*PropertyName\s*=\s*(?P<pn>'(?:[^']|'')*'|\"[^\"]*\"|@\w+)\s*,"
    r"\s*PropertyValues\s*=\s*(?P<pv>\[.*\]|@\w+)\s*\)$",
    re.DOTALL,
)
CMP_RE = re.compile(r"^(?P<col>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<op>eq|ne)\s+(?P<val>.+)$", re.DOTALL)
NO_VALUE = object()

Predicate = Callable[[str, dict[str, Any]], bool]


def _split(text: str, token: str) -> list[str]:
    """Split ``text`` on ``token`` (case-insensitive) outside quotes (``''`` and ``\\"`` escapes) and brackets."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    i = 0
    low = text.lower()
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                if quote == "'" and i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and low.startswith(token, i):
            parts.append(text[start:i])
            i += len(token)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on word ``sep`` (case-insensitive) outside quotes/brackets."""
    return _split(text, f" {sep} ")


def parse_string_literal(text: str) -> str | None:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else None
    return None


def parse_value_list(text: str) -> list[str] | None:
    """Parse ``['a','b']`` or ``["a","b"]`` (OData collection literal)."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if not inner:
        return []
    values: list[str] = []
    for item in _split(inner, ","):
        parsed = parse_string_literal(item)
        if parsed is None:
            return None
        values.append(parsed)
    return values


def parse_literal(text: str) -> Any:
    text = text.strip()
    as_string = parse_string_literal(text)
    if as_string is not None:
        return as_string
    if is_guid(text):
        return text.lower()
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return NO_VALUE


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def balanced(text: str) -> bool:
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def resolve_alias(text: str, query: dict[str, str]) -> str:
    if text.startswith("@"):
        if text not in query:
            raise DataverseError(400, errors.ODATA, f"The parameter alias '{text}' was not found in the request.")
        return query[text]
    return text


def parse_select(ent: Entity, query: dict[str, str]) -> list[str]:
    select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()]
    for name in select:
        if not ent.has_column(name):
            raise DataverseError(
                400,
                errors.ODATA,
                f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{ent.logical_name}'.",
            )
    return select


def parse_top(query: dict[str, str]) -> int | None:
    text = query.get("$top")
    if text is None:
        return None
    if not text.isdigit():
        raise DataverseError(400, errors.ODATA, f"Invalid value '{text}' for $top query option found.")
    return int(text)


def wants_formatted(prefer: str) -> tuple[bool, list[tuple[str, str]]]:
    m = re.search(r"odata\.include-annotations\s*=\s*\"?([^\",;]*)\"?", prefer)
    if not m:
        return False, []
    value = m.group(1).strip()
    ok = value == "*" or FORMATTED in value or (value.endswith(".*") and FORMATTED.startswith(value[:-1]))
    return ok, [("Preference-Applied", f'odata.include-annotations="{value}"')]


def parse_filter(ent: Entity, text: str, query: dict[str, str]) -> Predicate:
    text = text.strip()
    if not text:
        return lambda key, row: True
    tests = [_parse_clause(ent, clause, query) for clause in split_top_level(text, "and")]
    return lambda key, row: all(t(key, row) for t in tests)


def _column_value(ent: Entity, key: str, row: dict[str, Any], column: str) -> Any:
    return key if column == ent.primary_key else row.get(column)


def _parse_clause(ent: Entity, clause: str, query: dict[str, str]) -> Predicate:
    while clause.startswith("(") and clause.endswith(")") and balanced(clause[1:-1]):
        clause = clause[1:-1].strip()
    m = IN_RE.match(clause)
    if m:
        name = parse_string_literal(resolve_alias(m.group("pn"), query))
        values = parse_value_list(resolve_alias(m.group("pv"), query))
        if name is None or values is None:
            raise DataverseError(400, errors.ODATA, f"Invalid arguments to Microsoft.Dynamics.CRM.In: '{clause}'.")
        if not ent.has_column(name):
            raise DataverseError(
                400,
                errors.MISSING_ATTRIBUTE,
                f"'{ent.logical_name}' entity doesn't contain attribute with Name = '{name}' and "
                "NameMapping = 'Logical'.",
            )
        wanted = {v.lower() for v in values}
        column = name
        return lambda key, row: _norm(_column_value(ent, key, row, column)) in wanted
    m = CMP_RE.match(clause)
    if m:
        column = m.group("col")
        if not ent.has_column(column):
            raise DataverseError(
                400,
                errors.ODATA,
                f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.{ent.logical_name}'.",
            )
        literal = parse_literal(resolve_alias(m.group("val").strip(), query))
        if literal is NO_VALUE:
            raise DataverseError(400, errors.ODATA, f"Syntax error in $filter near '{m.group('val')}'.")
        negate = m.group("op") == "ne"
        target = _norm(literal)
        return lambda key, row: (_norm(_column_value(ent, key, row, column)) == target) != negate
    raise DataverseError(
        400,
        errors.ODATA,
        f"The $filter expression '{clause}' is not supported by the emulator "
        "(supported: Microsoft.Dynamics.CRM.In, <col> eq|ne <literal>, joined by 'and').",
    )
