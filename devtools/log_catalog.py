"""The structured log events the app emits and the fields (custom dimensions) each carries, read from the code.

Every ``log_event("<event>", level, field=…)`` call in ``shared/`` and ``functions/`` is found with :mod:`ast`:
its keyword names are the fields; ``**activity_ids(…)`` adds the correlation ids that function returns; events
logged through a ``("<event>", level, {fields})`` tuple (the settlement helper) get the tuple's keys plus the
keywords of the ``log_event`` call that logs such tuples. Every line also carries ``event`` itself, and may carry the
fields of any ``log_scope(field=…)`` (``org_id``: multi-org).
Used by tests/infra/test_workbook.py: a workbook query may only use what this finds.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
ROOTS = ("shared", "functions")


def _correlation_ids() -> set[str]:
    from shared.app.message import activity_ids
    from shared.domain.models import ActivityRef

    return set(activity_ids(ActivityRef("r", "a", "c", "j", "i", "t", "e")))


def _is_log_call(node: ast.AST, name: str = "log_event") -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _is_ids_call(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "activity_ids"


def _fields(call: ast.Call, ids: set[str], assigned: dict[str, ast.expr]) -> set[str]:
    fields = {k.arg for k in call.keywords if k.arg is not None}
    for splat in (k.value for k in call.keywords if k.arg is None):
        source = assigned.get(splat.id) if isinstance(splat, ast.Name) else splat
        if _is_ids_call(source):
            fields |= ids
        elif source is not None:
            fields |= _dict_keys(source, assigned)
    return fields


def _assignments(scope: ast.AST) -> dict[str, ast.expr]:
    return {
        target.id: node.value
        for node in ast.walk(scope)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _dict_keys(node: ast.expr, assigned: dict[str, ast.expr]) -> set[str]:
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if not isinstance(node, ast.Dict):
        return set()
    return {str(k.value) for k in node.keys if isinstance(k, ast.Constant)}


def _logged_tuples(function: ast.FunctionDef) -> list[tuple[str, set[str]]]:
    """``("<event>", level, {fields} | fields)`` tuples in one function (a ``fields = {...}`` of it resolved)."""
    assigned = _assignments(function)
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Tuple) and len(node.elts) == 3:
            name = node.elts[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and EVENT_NAME.match(name.value):
                found.append((name.value, _dict_keys(node.elts[2], assigned)))
    return found


def catalog(repo: Path, roots: Iterable[str] = ROOTS) -> dict[str, set[str]]:
    """Event name → the fields its lines may carry (``event`` included)."""
    ids = _correlation_ids()
    events: dict[str, set[str]] = {}
    tuple_events: dict[str, set[str]] = {}
    indirect_fields: set[str] = set()
    scoped: set[str] = set()  # log_scope(...) fields: any line logged inside may carry them
    for root in roots:
        for path in sorted((repo / root).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
            for scope in scopes:
                for name, keys in _logged_tuples(scope):
                    tuple_events.setdefault(name, set()).update(keys)
                assigned = _assignments(scope)
                for node in ast.walk(scope):
                    if isinstance(node, ast.Call) and _is_log_call(node, "log_scope"):
                        scoped |= {k.arg for k in node.keywords if k.arg is not None}
                    if not isinstance(node, ast.Call) or not _is_log_call(node):
                        continue
                    first = node.args[0] if node.args else None
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        events.setdefault(first.value, set()).update(_fields(node, ids, assigned))
                    else:
                        indirect_fields |= _fields(node, ids, assigned)
    for name, keys in tuple_events.items():
        events.setdefault(name, set()).update(keys | indirect_fields)
    return {name: fields | scoped | {"event"} for name, fields in events.items()}
