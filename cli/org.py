"""``channel org``: register the customer orgs one deployment serves (issue #15; docs/multi-org.md).

    channel org add <org-id> --url <web api url> --tenant <tenant id> [--name N] [--set SETTING=value ...]
                             [--secret SETTING=<key vault secret name> ...] [--disabled] [--check]
    channel org update <org-id> [same options] [--unset SETTING ...] [--enable | --disable]
    channel org disable <org-id>
    channel org remove <org-id> [--yes]
    channel org list [--json]
    channel org show <org-id> [--json]

Rows live in the state account's ORG_TABLE_NAME table (same connection as the app: AzureWebJobsStorage, or the
identity-based settings with your ``az login``). Every write is validated by the app settings' own rules with the
row's overrides applied; a row the app could not use is never stored. Secrets are Key Vault secret NAMES, never
values. ``--check`` (add, update) calls the org's WhoAmI with the org's token and refuses the row unless the org
answers with this organization id. Exit codes: 0 done; 2 bad input (an invalid row, an unknown or already registered
org, settings that do not load); 1 the table or the org could not be reached, or a concurrent change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TextIO

from azure.core.exceptions import AzureError

from cli.common import read_environ
from cli.doctor.org_access import OrgTokenSource, open_table, org_dataverse_tokens
from cli.org_view import describe, list_table, record_json
from shared.orgs.model import (
    ORG_SETTINGS,
    SECRET_SETTINGS,
    SECRET_SUFFIX,
    OrgConfigError,
    OrgRecord,
    org_id_of,
    web_api_url,
)
from shared.orgs.registry import OrgExists, OrgRegistry, OrgTable, UnknownOrg
from shared.ports import Conflict
from shared.settings import ConfigurationError, Settings, load_settings

BAD_INPUT, UNREACHABLE = 2, 1
STATIC_LOOPBACK_HINT = (
    "DATAVERSE_STATIC_TOKEN is a fixed token for loopback emulators only, and this org's WebApiUrl is not loopback: "
    "remove DATAVERSE_STATIC_TOKEN from the app settings (real orgs get per-tenant tokens through ORG_APP_CLIENT_ID), "
    "or register the emulator's http://127.0.0.1:<port> URL"
)


class CommandError(Exception):
    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _org_id(value: str) -> str:
    try:
        return org_id_of(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _assignment(value: str) -> tuple[str, str]:
    name, sep, setting_value = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"'{value[:60]}' is not SETTING=value")
    return name.strip(), setting_value.strip()


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--settings", metavar="FILE", help="read settings from a local.settings.json (environment wins)"
    )
    p = argparse.ArgumentParser(
        prog="channel org", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{add,update,disable,remove,list,show}")

    def fields(parser: argparse.ArgumentParser, *, required: bool) -> None:
        parser.add_argument("org_id", type=_org_id, help="the org's organization id (WhoAmI OrganizationId)")
        parser.add_argument("--url", required=required, help="the org's Web API URL (or its environment URL)")
        parser.add_argument("--tenant", required=required, help="the customer's Entra tenant (directory) id")
        parser.add_argument("--name", help="display name")
        for flag, dest, metavar, text in (
            ("--set", "overrides", "SETTING=value", "override an app setting for this org: " + ", ".join(ORG_SETTINGS)),
            (
                "--secret",
                "secrets",
                "SETTING=SECRET_NAME",
                "the NAME of a Key Vault secret (in KEY_VAULT_URI) holding this org's " + ", ".join(SECRET_SETTINGS),
            ),
        ):
            parser.add_argument(
                flag, dest=dest, type=_assignment, action="append", default=[], metavar=metavar, help=text
            )
        parser.add_argument(
            "--check", action="store_true", help="call the org's WhoAmI with its token; refuse another org's id"
        )

    add = sub.add_parser("add", parents=[common], help="register an org")
    fields(add, required=True)
    add.add_argument("--disabled", action="store_true", help="register it disabled (enable with update --enable)")
    update = sub.add_parser("update", parents=[common], help="change a registered org")
    fields(update, required=False)
    update.add_argument("--unset", action="append", default=[], metavar="SETTING", help="drop an override/secret")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--enable", action="store_true", help="route its activities again")
    state.add_argument("--disable", action="store_true", help="stop routing (its activities are poisoned)")
    disable = sub.add_parser("disable", parents=[common], help="stop routing an org (reversible: update --enable)")
    disable.add_argument("org_id", type=_org_id)
    remove = sub.add_parser("remove", parents=[common], help="delete an org's row")
    remove.add_argument("org_id", type=_org_id)
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    listing = sub.add_parser("list", parents=[common], help="every registered org")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = sub.add_parser("show", parents=[common], help="one org, every field (secrets by name)")
    show.add_argument("org_id", type=_org_id)
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    return p


# --- building a row from the options ----------------------------------------------------------------------------
def _setting_name(name: str, allowed: tuple[str, ...], what: str) -> str:
    name = name.strip().upper()
    if name not in allowed:
        raise CommandError(f"{name}: not {what}; one of: {', '.join(allowed)}")
    return name


def _changes(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    for name, _ in args.overrides:
        if name.strip().upper() in SECRET_SETTINGS:
            raise CommandError(
                f"{name.strip().upper()} is a secret: the registry never holds secret values; store it in Key Vault "
                f"(KEY_VAULT_URI) and pass --secret {name.strip().upper()}=<secret name>"
            )
    overrides = {_setting_name(n, ORG_SETTINGS, "a setting an org can override"): v for n, v in args.overrides}
    secrets = {
        _setting_name(n.upper().removesuffix(SECRET_SUFFIX), SECRET_SETTINGS, "a secret an org can bring"): v
        for n, v in args.secrets
    }
    for name, value in overrides.items():
        if not value:
            raise CommandError(f"{name}: empty value (use --unset {name} on update to drop an override)")
        if name in secrets:
            raise CommandError(f"{name}: given with both --set and --secret")
    for name, value in secrets.items():
        if not value:
            raise CommandError(f"{name}{SECRET_SUFFIX}: empty Key Vault secret name")
    return overrides, secrets


def _apply(record: OrgRecord, args: argparse.Namespace) -> OrgRecord:
    overrides, secrets = _changes(args)
    merged = {**record.overrides, **overrides}
    merged_secrets = {**record.secret_names, **secrets}
    for raw in getattr(args, "unset", []):
        name = raw.strip().upper().removesuffix(SECRET_SUFFIX)
        if name not in merged and name not in merged_secrets:
            raise CommandError(f"{name}: org {record.org_id} has no such override or secret to unset")
        merged.pop(name, None)
        merged_secrets.pop(name, None)
    enabled = record.enabled
    if getattr(args, "enable", False):
        enabled = True
    if getattr(args, "disable", False) or getattr(args, "disabled", False):
        enabled = False
    return replace(
        record,
        web_api_url=_web_api_url(args.url) if args.url else record.web_api_url,
        tenant_id=args.tenant.strip().lower() if args.tenant else record.tenant_id,
        display_name=args.name.strip() if args.name is not None else record.display_name,
        overrides=merged,
        secret_names=merged_secrets,
        enabled=enabled,
        unknown=(),  # what the row held that no org may set is dropped on a write (validation named it)
    )


def _web_api_url(value: str) -> str:
    try:
        return web_api_url(value)
    except ValueError:
        return value.strip()  # validation names it with the org (WebApiUrl: ...)


# --- the commands -----------------------------------------------------------------------------------------------
@dataclass
class Context:
    registry: OrgRegistry
    settings: Settings
    out: TextIO
    err: TextIO
    tokens: OrgTokenSource
    confirm: Callable[[str], bool]

    def warn_multi_org(self) -> None:
        if not self.settings.multi_org:
            self.err.write(
                "warning: MULTI_ORG is off in these settings: the app ignores the org registry until MULTI_ORG=true "
                "(docs/multi-org.md)\n"
            )


def _check_whoami(ctx: Context, record: OrgRecord) -> None:
    from cli.doctor.org_checks import whoami_organization

    found, problem = whoami_organization(ctx.registry.validate(record), record, ctx.tokens)
    if problem:
        raise CommandError(f"org {record.org_id}: --check: {problem}", UNREACHABLE)
    if found != record.org_id:
        raise CommandError(
            f"org {record.org_id}: --check: the org at {record.web_api_url} answers WhoAmI with OrganizationId "
            f"{found}: the URL names another org (or the id is wrong)"
        )
    ctx.out.write(f"checked: WhoAmI at {record.web_api_url} returns OrganizationId {found}\n")


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    record = _apply(OrgRecord(org_id=args.org_id, web_api_url="", tenant_id=""), args)
    if args.check:
        _check_whoami(ctx, record)
    saved = ctx.registry.add(record)
    ctx.out.write(f"added org {saved.org_id}{_named(saved)}: {saved.web_api_url} ({_state(saved)})\n")
    ctx.warn_multi_org()
    return 0


_UPDATE_OPTIONS = ("url", "tenant", "name", "overrides", "secrets", "unset", "enable", "disable")


def cmd_update(ctx: Context, args: argparse.Namespace) -> int:
    if not any(getattr(args, name) not in (None, False, []) for name in _UPDATE_OPTIONS) and not args.check:
        raise CommandError(
            "nothing to change: pass --url, --tenant, --name, --set, --secret, --unset, --enable or --disable "
            "(or --check to check the org)"
        )
    changed = _update(ctx, args.org_id, lambda current: _apply(current, args), check=args.check)
    ctx.out.write(f"updated org {changed.org_id}{_named(changed)} ({_state(changed)}); {_takes_effect(ctx)}\n")
    ctx.warn_multi_org()
    return 0


def cmd_disable(ctx: Context, args: argparse.Namespace) -> int:
    changed = _update(ctx, args.org_id, lambda current: replace(current, enabled=False, unknown=()))
    ctx.out.write(
        f"disabled org {changed.org_id}{_named(changed)}: its activities go to the poison queue (reason "
        f"unknown_organization); {_takes_effect(ctx)}\n"
    )
    return 0


def _update(ctx: Context, org_id: str, change: Callable[[OrgRecord], OrgRecord], *, check: bool = False) -> OrgRecord:
    dropped: tuple[str, ...] = ()

    def changed(current: OrgRecord) -> OrgRecord:
        nonlocal dropped
        dropped = current.unknown  # properties no org may set (a hand-edited row): not written back
        record = change(current)
        if check:
            _check_whoami(ctx, record)
        return record

    saved = ctx.registry.update(org_id, changed)
    if dropped:
        ctx.err.write(f"note: dropped what no org can set: {', '.join(dropped)}\n")
    return saved


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    record = ctx.registry.get(args.org_id)
    if record is None:
        raise UnknownOrg(f"org {args.org_id} is not registered (see 'channel org list')")
    if not args.yes and not ctx.confirm(f"remove org {record.org_id}{_named(record)} ({record.web_api_url})?"):
        raise CommandError("not removed (pass --yes to remove without asking)")
    ctx.registry.remove(record.org_id)
    ctx.out.write(
        f"removed org {record.org_id}{_named(record)}; {_takes_effect(ctx)}. Its state records stay in the state "
        "table until they expire\n"
    )
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    records = ctx.registry.list()
    if args.json:
        ctx.out.write(json.dumps([record_json(r, ctx.registry) for r in records], indent=2) + "\n")
    else:
        ctx.out.write(list_table(records))
    ctx.warn_multi_org()
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    record = ctx.registry.get(args.org_id)
    if record is None:
        raise UnknownOrg(f"org {args.org_id} is not registered (see 'channel org list')")
    if args.json:
        ctx.out.write(json.dumps(record_json(record, ctx.registry), indent=2) + "\n")
    else:
        ctx.out.write(describe(record, ctx.registry))
    return 0


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "add": cmd_add,
    "update": cmd_update,
    "disable": cmd_disable,
    "remove": cmd_remove,
    "list": cmd_list,
    "show": cmd_show,
}


def _named(record: OrgRecord) -> str:
    return f" ({record.display_name})" if record.display_name else ""


def _state(record: OrgRecord) -> str:
    return "enabled" if record.enabled else "disabled"


def _takes_effect(ctx: Context) -> str:
    return f"running instances see the change within ORG_CACHE_SECONDS ({ctx.settings.org_cache_seconds:g} s)"


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    table: OrgTable | None = None,
    tokens: OrgTokenSource | None = None,
    confirm: Callable[[str], bool] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    args = _parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = load_settings(dict(environ if environ is not None else read_environ(args.settings)))
    except ConfigurationError as exc:
        err.write(f"channel org: the app settings do not load: {exc}\n")
        return BAD_INPUT
    registry = OrgRegistry(table if table is not None else open_table(settings), settings, cache_seconds=0)
    ctx = Context(registry, settings, out, err, tokens or org_dataverse_tokens, confirm or _ask)
    try:
        return COMMANDS[args.command](ctx, args)
    except OrgConfigError as exc:
        err.write(f"channel org: {exc}\n")
        if "DATAVERSE_STATIC_TOKEN" in str(exc):
            err.write(f"  fix: {STATIC_LOOPBACK_HINT}\n")
        return BAD_INPUT
    except CommandError as exc:
        err.write(f"channel org: {exc}\n")
        return exc.code
    except (OrgExists, UnknownOrg) as exc:
        err.write(f"channel org: {exc}\n")
        return BAD_INPUT
    except Conflict as exc:
        err.write(f"channel org: {exc}: someone changed it at the same time; run the command again\n")
        return UNREACHABLE
    except AzureError as exc:  # the storage SDK (and azure-identity): the table could not be reached
        err.write(
            f"channel org: the org registry table {settings.org_table_name} could not be reached: "
            f"{exc.__class__.__name__}: {str(exc)[:300]}\n"
            "  fix: check AzureWebJobsStorage (or __tableServiceUri / __accountName with 'Storage Table Data "
            "Contributor' for your az login)\n"
        )
        return UNREACHABLE
