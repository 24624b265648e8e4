"""``channel provision --application-user <ORG_APP_CLIENT_ID> --app-user-role <name>``: the part of a multi-org
deployment (issue #15) the customer's admin runs in their own org with their own ``az login``: the application user
of the ISV's multi-tenant app registration, with the ISV's security role. Nothing else is created; a re-run changes
nothing. Prints the organization id the ISV registers the org under (``channel org add``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from cli.provision import PRIVILEGES, _check_url, _client
from provisioning.app_user import AppUserOptions, AppUserResult, AppUserSteps
from provisioning.gateway import Gateway
from provisioning.toolkit import ProvisionError, Steps
from shared.domain.errors import DataverseError, TransientError

# What this mode reads besides the application-user options; any other option belongs to the full run.
_OWN = frozenset({"application_user", "app_user_role", "business_unit", "dataverse_url", "dry_run"})


def _conflicts(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        "--" + dest.replace("_", "-")
        for dest, value in vars(args).items()
        if dest not in _OWN and value != parser.get_default(dest)
    )


def run_application_user(args: argparse.Namespace, parser: argparse.ArgumentParser, client: Any, out: TextIO) -> int:
    conflicts = _conflicts(args, parser)
    if conflicts:
        print(
            f"channel provision: --application-user creates only the application user; drop {', '.join(conflicts)} "
            "(or use --create-app-user with the full run)",
            file=sys.stderr,
        )
        return 2
    if not args.app_user_role:
        print(
            "channel provision: --application-user needs --app-user-role <security role name> (the role your channel "
            "vendor's solution ships, or one you create with the privileges listed by 'channel provision --help')",
            file=sys.stderr,
        )
        return 2

    def say(text: str) -> None:
        out.write(text + "\n")

    try:
        url = _check_url(args.dataverse_url)
        gateway = Gateway(client or _client(url), dry_run=args.dry_run, echo=say if args.dry_run else None)
        if args.dry_run:
            say(f"# dry run: reads are made, writes are only printed ({url})")
        steps = Steps(gateway, "", say)
        options = AppUserOptions(args.application_user, args.app_user_role, args.business_unit, "--application-user")
        app_user = AppUserSteps(steps, options)
        app_user.preflight()
        result = app_user.run()
        who = gateway.read("WhoAmI", None, operation="WhoAmI") or {}
    except (ProvisionError, ValueError) as exc:
        print(f"channel provision: {exc}", file=sys.stderr)
        return 1
    except (DataverseError, TransientError) as exc:
        print(f"channel provision: Dataverse refused a request: {exc}", file=sys.stderr)
        return 1
    _report(args, url, steps, result, str(who.get("OrganizationId") or "<organization id>"), out)
    return 0


def _report(args: argparse.Namespace, url: str, steps: Steps, result: AppUserResult, org_id: str, out: TextIO) -> None:
    w = out.write
    verb = "would change" if args.dry_run else "changed"
    w(f"\n{len(steps.changes)} {verb}" + (": nothing to do\n" if not steps.changes else "\n"))
    state = ("would be created" if args.dry_run else "created") if result.created else "present"
    w(f"\nApplication user of app {args.application_user.lower()}: {state}, security role '{args.app_user_role}'.\n")
    w("The role needs (Organization level unless stated):\n")
    for item in PRIVILEGES:
        w(f"  - {item.format(table='<the channel message table>')}\n")
    w(
        "\nNext: send your channel vendor this organization id and your Entra tenant (directory) id; they register "
        "the org with:\n"
        f"  channel org add {org_id} --url {url}/api/data/v9.2 --tenant <your tenant id> --check\n"
    )
