"""The provisioning step toolkit: read → compare → create or update → say what changed, written once.

Every step module (outbound marketing, real-time journeys, relay authentication) imports only this module, the
table list (:mod:`provisioning.tables`) and the definition; none imports another step module. A step gets a
:class:`Steps` (the gateway, the solution, the output and the change list) and calls :func:`ensure_row`, or
:meth:`Steps.create` / :meth:`Steps.update` for the rare write that is not a plain row comparison. Every row write is
checked against :data:`provisioning.tables.COLUMNS` before it is sent (or, in a dry run, printed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from provisioning.gateway import Gateway
from provisioning.tables import ColumnError, Table, check_row


class ProvisionError(RuntimeError):
    """The org is in a state provisioning must not paper over; the message says what to fix."""


def lit(value: str) -> str:
    """An OData string literal."""
    return "'" + value.replace("'", "''") + "'"


def changed_columns(changes: Mapping[str, Any]) -> str:
    """``a, b`` (sorted, binds by their navigation property name) for an "update …" line."""
    return ", ".join(sorted(name.removesuffix("@odata.bind") for name in changes))


def checked(table: Table, body: Mapping[str, Any]) -> None:
    """Check a row body against the column table; a misfit is a :class:`ProvisionError` naming table and column."""
    try:
        check_row(table.logical_name, body)
    except ColumnError as exc:
        raise ProvisionError(str(exc)) from None


@dataclass
class Steps:
    """What every step needs: the gateway, the solution components go to, the output, the changes and notes."""

    gw: Gateway
    solution: str
    say: Callable[[str], None] = print
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.gw.dry_run

    @property
    def in_solution(self) -> dict[str, str]:
        return {"MSCRM.SolutionUniqueName": self.solution}

    def changed(self, text: str) -> None:
        self.changes.append(text)
        self.say(("would " if self.gw.dry_run else "") + text)

    def ok(self, text: str) -> None:
        self.say(f"{text}: up to date")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def create(
        self,
        table: Table,
        body: Mapping[str, Any],
        *,
        what: str,
        in_solution: bool = True,
        placeholder: str = "",
        secret_fields: frozenset[str] = frozenset(),
    ) -> str:
        """POST a row (checked first); returns its id (``placeholder`` in a dry run)."""
        checked(table, body)
        return self.gw.write(
            "POST",
            table.entity_set,
            dict(body),
            operation=f"create {what}",
            headers=self.in_solution if in_solution else None,
            placeholder=placeholder or f"<new {what} id>",
            secret_fields=secret_fields,
        )

    def update(
        self,
        table: Table,
        row_id: str,
        changes: Mapping[str, Any],
        *,
        what: str,
        secret_fields: frozenset[str] = frozenset(),
    ) -> None:
        """PATCH the given columns of an existing row (checked first)."""
        checked(table, changes)
        self.gw.write(
            "PATCH",
            f"{table.entity_set}({row_id})",
            dict(changes),
            operation=f"update {what}",
            headers={"If-Match": "*"},
            secret_fields=secret_fields,
        )

    def create_metadata(self, path: str, body: Mapping[str, Any], *, what: str, placeholder: str) -> None:
        """POST a metadata definition (table, column, relationship) into the solution."""
        self.gw.write(
            "POST", path, dict(body), operation=f"create {what}", headers=self.in_solution, placeholder=placeholder
        )

    def delete(self, table: Table, row_id: str, *, what: str) -> None:
        self.gw.write("DELETE", f"{table.entity_set}({row_id})", None, operation=f"delete {what}")

    def rows(self, source: Table | str, select: Sequence[str], where: str, *, what: str) -> list[dict[str, Any]]:
        """``GET <entity set>?$select=…&$filter=…``: the rows (``source``: a table or an entity set name)."""
        entity_set = source.entity_set if isinstance(source, Table) else source
        return self.gw.rows(entity_set, {"$select": ",".join(select), "$filter": where}, operation=f"read {what}")


Status = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    id: str
    row: dict[str, Any] | None = None  # the row as read (None when created)
    changes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> bool:
        return self.status == "created"


def ensure_row(
    steps: Steps,
    table: Table,
    desired: Mapping[str, Any],
    *,
    what: str,
    where: str | None = None,
    row_id: str | None = None,
    select: Sequence[str] = (),
    pick: Callable[[list[dict[str, Any]]], dict[str, Any] | None] | None = None,
    skip_read: bool = False,
    body: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
    same: Mapping[str, Callable[[Any, Any], bool]] | None = None,
    extra_changes: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    created_text: str | None = None,
    updated_text: str | None = None,
    unchanged_text: str | None = "",
    in_solution: bool = True,
    placeholder: str = "",
    secret_fields: frozenset[str] = frozenset(),
) -> Outcome:
    """Make one row look like ``desired``: read it, create it when missing, otherwise PATCH only what differs.

    Read by ``row_id`` or by the OData filter ``where`` (``pick`` chooses among several rows; default the first);
    ``skip_read`` (a dry run whose parent row is not created yet) treats it as missing. ``body`` is the create
    body (default ``desired``; a callable is called only when the row is created). ``check`` validates an existing
    row (raise to stop); ``same`` compares a column its own way; ``extra_changes`` adds columns that cannot be
    compared (write-only values, binds). Texts: ``created_text`` (default ``create <what>``), ``updated_text``
    (default ``update <what> (<columns>)``), ``unchanged_text`` (default ``<what>: up to date``; None: silent).
    """
    row = None
    if not skip_read:
        row = _read(steps, table, desired, what=what, where=where, row_id=row_id, select=select, pick=pick)
    if row is None:
        if callable(body):
            body = body()
        new_id = steps.create(
            table,
            body if body is not None else desired,
            what=what,
            in_solution=in_solution,
            placeholder=placeholder,
            secret_fields=secret_fields,
        )
        steps.changed(created_text or f"create {what}")
        return Outcome("created", row_id or new_id)
    found_id = str(row.get(table.id_column) or row_id or "")
    if check is not None:
        check(row)
    compare = same or {}
    changes = {
        name: value
        for name, value in desired.items()
        if not (compare[name](row.get(name), value) if name in compare else row.get(name) == value)
    }
    if extra_changes is not None:
        changes.update(extra_changes(row))
    if not changes:
        if unchanged_text is not None:
            steps.ok(unchanged_text or what)
        return Outcome("unchanged", found_id, row)
    steps.update(table, found_id, changes, what=what, secret_fields=secret_fields)
    steps.changed(updated_text or f"update {what} ({changed_columns(changes)})")
    return Outcome("updated", found_id, row, changes)


def _read(
    steps: Steps,
    table: Table,
    desired: Mapping[str, Any],
    *,
    what: str,
    where: str | None,
    row_id: str | None,
    select: Sequence[str],
    pick: Callable[[list[dict[str, Any]]], dict[str, Any] | None] | None,
) -> dict[str, Any] | None:
    columns = ",".join(dict.fromkeys([table.id_column, *select, *desired]))
    if row_id is not None:
        return steps.gw.read(f"{table.entity_set}({row_id})", {"$select": columns}, operation=f"read {what}")
    if where is None:
        raise ValueError("ensure_row needs row_id or where")
    found = steps.gw.rows(table.entity_set, {"$select": columns, "$filter": where}, operation=f"read {what}")
    if pick is not None:
        return pick(found)
    return found[0] if found else None
