"""``channel ambiguous list``: the sends still being reconciled (issue #13), and why.

Reads the state table (``STATE_TABLE_NAME``) for records whose send is ambiguous: outbound-marketing activities
(``send_status eq 'ambiguous'``) and real-time journeys sends (``status eq 'ambiguous'``). One line each: the
record key, the contract, since when (its last write), the provider, the masked phone, the reconciliation attempts
so far and the latest reason (the last error, or the reconciliation's latest note). ``--json`` for scripts.
Read-only: it never changes a record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from cli.common import read_environ
from shared.settings import ConfigurationError, Settings, load_settings

FILTER = "send_status eq 'ambiguous' or status eq 'ambiguous'"


@dataclass(frozen=True)
class Row:
    key: str
    contract: str  # outbound | rtj
    since: str
    provider: str
    phone: str
    attempts: int
    reason: str


def rows(entities: Iterable[Mapping[str, Any]]) -> list[Row]:
    """The ambiguous records among table entities (anything else is ignored), oldest first."""
    found = []
    for entity in entities:
        outbound = entity.get("RowKey") == "activity"
        status = entity.get("send_status") if outbound else entity.get("status")
        if status != "ambiguous" or entity.get("RowKey") not in ("activity", "rtj"):
            continue
        note = str(entity.get("reconcile_note") or "")
        reason = note or str(entity.get("last_error") or entity.get("detail") or "")
        found.append(
            Row(
                key=str(entity.get("PartitionKey", "")),
                contract="outbound" if outbound else "rtj",
                since=str(entity.get("updated_at") or ""),
                provider=str(entity.get("provider") or ""),
                phone=str(entity.get("phone_masked") or entity.get("to_masked") or ""),
                attempts=int(entity.get("reconcile_attempts") or 0),
                reason=reason.replace("\n", " ")[:200],
            )
        )
    return sorted(found, key=lambda row: (row.since, row.key))


def render(found: list[Row], out: TextIO) -> None:
    if not found:
        out.write("no ambiguous sends: nothing is being reconciled\n")
        return
    out.write(f"{'record':<38} {'contract':<8} {'since':<32} {'provider':<8} {'phone':<14} tries  reason\n")
    for row in found:
        out.write(
            f"{row.key:<38} {row.contract:<8} {row.since:<32} {row.provider:<8} {row.phone:<14} {row.attempts:>5}  "
            f"{row.reason}\n"
        )
    out.write(f"\n{len(found)} ambiguous send(s) (reconciled automatically; see docs/reconciliation.md)\n")


def table_client(settings: Settings) -> Any:
    """The state table, as the app reaches it (connection string, or the storage identity)."""
    from azure.data.tables import TableClient

    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, table_name=settings.state_table_name)
    from shared.adapters.tokens import default_credential

    endpoint = settings.storage_table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    credential: Any = default_credential(settings.storage_client_id or settings.azure_client_id)
    return TableClient(endpoint=endpoint.rstrip("/"), table_name=settings.state_table_name, credential=credential)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="channel ambiguous", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the sends still being reconciled, and why")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of the table")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many records (default 1000)")
    listing.add_argument("--settings", metavar="FILE", help="read settings from a local.settings.json")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    table: Any = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    if table is None:
        try:
            settings = load_settings(dict(environ if environ is not None else read_environ(args.settings)))
        except ConfigurationError as exc:
            err.write(f"channel ambiguous: {exc} (run `channel doctor` for the fixes)\n")
            return 2
        table = table_client(settings)
    from azure.core.exceptions import AzureError

    try:
        entities = table.query_entities(FILTER, results_per_page=min(args.limit, 1000))
        found = rows(entity for _, entity in zip(range(args.limit), entities, strict=False))
    except AzureError as exc:
        err.write(f"channel ambiguous: cannot read the state table: {exc.__class__.__name__}\n")
        return 1
    if args.json:
        out.write(json.dumps([asdict(row) for row in found], indent=2) + "\n")
    else:
        render(found, out)
    return 0
