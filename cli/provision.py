"""``channel provision``: one idempotent command for everything Dataverse-side of the channel.

Creates or updates, inside one unmanaged solution: the message table and its text column, the tile XML web resource
(published), the Service Bus service endpoint (queue, JSON, SAS key) and the asynchronous post-operation step on
Create of the custom channel activity; optionally the application user of the Function app's managed identity.
Re-running changes nothing. ``--dry-run`` prints every Web API request (reads are made, writes are not).
Then prints the app settings that follow from the definition and the remaining manual steps. See docs/deploy.md.

``--rtj`` adds the real-time journeys side (outbound custom API bound to the relay plug-in, its environment
variables and, with ``--relay-auth entra``, its managed identity, extended channel-instance tables and relationships,
channel definition, ``text`` message part, read privileges); ``--rtj-only`` runs only that part and needs no Service
Bus values. See docs/real-time-journeys.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

from provisioning.definition import ChannelDefinition, validate_prefix
from provisioning.gateway import Gateway
from provisioning.provisioner import (
    CONTRACTS,
    OutboundOptions,
    Provisioner,
    ProvisionError,
    ProvisionOptions,
    ProvisionResult,
)
from provisioning.relay import EntraAuth, RelayAuth, SecretAuth, guid, relay_secret, relay_url, token_scope
from provisioning.rtj import RtjOptions
from provisioning.rtj_definition import RELAY_PLUGIN_TYPE, RTJ_CHANNEL_TYPES, RTJ_READ_ROLES, RtjChannel
from provisioning.secrets import SecretError, key_vault_secret
from provisioning.whatsapp import app_settings as whatsapp_settings
from shared.domain.errors import DataverseError, TransientError
from shared.settings import is_loopback_host

PRIVILEGES = (
    "Read on Contact (organization level) and Write on Contact (to set the compliance column on STOP / opt-out)",
    "Read on the message table {table} (organization level)",
    "Read on Custom Channel Activity (msdyncrm_customerjourneycustomchannelactivity, organization level)",
    "Read on Customer Journey and Customer Journey Iteration (entity references of the interaction action)",
    "Execute the msdyncrm_CustomChannelActivityCreateInteraction action (custom API / SDK message privilege; "
    "prvCreatemsdyncrm_… on the interaction table if your org enforces it)",
)


RTJ_PRIVILEGES = (
    "for real-time journeys: whatever msdyn_D365ChannelsNotification / msdyn_D365ChannelsInbound require "
    "(not documented; see docs/real-time-journeys.md, 'Unconfirmed')",
)


RELAY_AUTH_MODES = ("entra", "secret")
ENTRA_FLAGS = ("--relay-token-scope", "--relay-identity-client-id", "--relay-identity-tenant-id")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="channel provision",
        description="Create or update the channel's Dataverse side (idempotent). See docs/deploy.md.",
    )
    p.add_argument("--dataverse-url", default=os.environ.get("DATAVERSE_URL"), help="default: env DATAVERSE_URL")
    p.add_argument("--prefix", help="solution publisher customization prefix, e.g. cr123 (required)")
    p.add_argument("--solution", help="unique name of the unmanaged solution, created if missing (required)")
    p.add_argument("--publisher", help="unique name of a new publisher (default: <solution>Publisher)")
    p.add_argument("--namespace", help="Service Bus namespace name (SERVICE_BUS_NAMESPACE); not with --rtj-only")
    p.add_argument("--queue", help="activity queue (ACTIVITY_QUEUE_NAME); not with --rtj-only")
    p.add_argument("--sas-key-name", help="queue-scoped Send-only SAS rule, e.g. dataverse-send; not with --rtj-only")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--sas-key", help="the SAS key or a Service Bus connection string (prefer --key-vault)")
    key.add_argument("--key-vault", help="Key Vault name (KEY_VAULT_NAME) holding the key or connection string")
    p.add_argument("--secret-name", help="secret in --key-vault (DATAVERSE_SB_SECRET_NAME)")
    p.add_argument(
        "--rotate-key",
        action="store_true",
        help="write the SAS key even if the endpoint already has one (Dataverse never returns it for comparison)",
    )
    p.add_argument(
        "--contract",
        choices=sorted(CONTRACTS),
        default="queue",
        help="serviceendpoint contract: queue (2, default) or queue-persistent (6); see docs/deploy.md",
    )
    p.add_argument("--endpoint-name", help="service endpoint name (default: <prefix>_<tile>_activities)")
    p.add_argument("--tile-name", default="Sms", help="tile file name part: <prefix>_<name>CustomerJourney… (Sms)")
    p.add_argument("--compliance-column", default="donotphone", help="boolean contact column (COMPLIANCE_COLUMN)")
    p.add_argument("--lookup-view-id", help="override the table's lookup view id in the tile")
    p.add_argument("--quick-view-form-id", help="override the table's quick view form id in the tile")
    p.add_argument("--create-app-user", metavar="CLIENT_ID", help="create the application user (AZURE_CLIENT_ID)")
    p.add_argument(
        "--business-unit", help="business unit id or name for --create-app-user / --application-user (default: root)"
    )
    p.add_argument(
        "--app-user-role",
        metavar="ROLE_NAME",
        help="security role (exact name, in the user's business unit) to assign to the application user",
    )
    p.add_argument(
        "--application-user",
        metavar="ORG_APP_CLIENT_ID",
        help="multi-org (docs/multi-org.md), run by the customer's admin: ONLY the application user of the ISV's "
        "multi-tenant app, with --app-user-role; no --prefix / --solution, nothing else is created",
    )
    rtj = p.add_argument_group("real-time journeys (docs/real-time-journeys.md)")
    rtj.add_argument("--rtj", action="store_true", help="also create the real-time journeys custom channel")
    rtj.add_argument(
        "--rtj-only", action="store_true", help="only the real-time journeys part (no outbound-marketing steps)"
    )
    rtj.add_argument(
        "--rtj-channel-type", choices=sorted(RTJ_CHANNEL_TYPES), help="default: sms (custom with --whatsapp)"
    )
    rtj.add_argument("--rtj-api-name", help="outbound custom API unique name (default: <prefix>_ChannelOutbound)")
    rtj.add_argument(
        "--rtj-display-name",
        help="channel display name, at most 90 characters (default: Custom SMS / Custom messaging)",
    )
    rtj.add_argument(
        "--relay-plugin-type", default=RELAY_PLUGIN_TYPE, help=f"plug-in type of the custom API ({RELAY_PLUGIN_TYPE})"
    )
    rtj.add_argument("--relay-url", help="value of <prefix>_ChannelRelayUrl: https://<app>/api/rtj/outbound")
    rtj.add_argument(
        "--relay-auth",
        choices=RELAY_AUTH_MODES,
        help="how the relay proves itself to the app (RTJ_AUTH_MODE): entra (recommended: a token from the plug-in "
        "assembly's managed identity) or secret (a Text variable holding RTJ_OUTBOUND_SECRET)",
    )
    rtj.add_argument("--relay-token-scope", help="entra: value of <prefix>_ChannelRelayScope, api://<app id>/.default")
    rtj.add_argument(
        "--relay-identity-client-id", help="entra: client id of the plug-in's Entra identity (RTJ_TOKEN_CLIENT_ID)"
    )
    rtj.add_argument("--relay-identity-tenant-id", help="entra: its tenant id (RTJ_TOKEN_TENANT_ID)")
    rtj.add_argument(
        "--relay-secret",
        help="secret: value of <prefix>_ChannelRelaySecret, the app's RTJ_OUTBOUND_SECRET (default with "
        "--relay-auth secret: env RTJ_OUTBOUND_SECRET, which keeps it out of process listings)",
    )
    p.add_argument("--dry-run", action="store_true", help="print every Web API request; make no writes")
    p.add_argument("--print-tile", action="store_true", help="also print the tile XML")
    p.add_argument(
        "--whatsapp",
        action="store_true",
        help="WhatsApp template columns on the message table and its form; with --rtj, template message parts",
    )
    return p


def _namespace_name(value: str) -> str:
    value = value.strip().removeprefix("sb://").rstrip("/")
    return value.removesuffix(".servicebus.windows.net")


def _check_url(url: str | None) -> str:
    if not url:
        raise ProvisionError("pass --dataverse-url or set DATAVERSE_URL (https://<org>.crm.dynamics.com)")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ProvisionError(
            f"--dataverse-url must be the environment URL, e.g. https://contoso.crm.dynamics.com: {url}"
        )
    return url


def _client(url: str) -> Any:
    from shared.adapters.dataverse import DataverseClient
    from shared.adapters.tokens import dataverse_tokens

    tokens = dataverse_tokens(
        url, static_token=os.environ.get("DATAVERSE_STATIC_TOKEN"), client_id=os.environ.get("AZURE_CLIENT_ID")
    )
    return DataverseClient(url, tokens)


def _key_source(args: argparse.Namespace) -> tuple[Callable[[], str] | None, str]:
    if args.sas_key:
        value = str(args.sas_key)
        return (lambda: value), "--sas-key"
    if args.key_vault:
        if not args.secret_name:
            raise ProvisionError("--key-vault needs --secret-name (DATAVERSE_SB_SECRET_NAME)")
        vault, name = str(args.key_vault), str(args.secret_name)
        return (lambda: key_vault_secret(vault, name)), f"Key Vault {vault} secret {name}"
    return None, ""


def _flag_values(args: argparse.Namespace, flags: tuple[str, ...]) -> dict[str, str | None]:
    return {flag: getattr(args, flag.removeprefix("--").replace("-", "_")) for flag in flags}


def _relay_auth(args: argparse.Namespace) -> RelayAuth | None:
    """The relay authentication mode from the flags (``--relay-auth``, or implied by the flags given)."""
    entra = _flag_values(args, ENTRA_FLAGS)
    given_entra = [flag for flag, value in entra.items() if value]
    mode = args.relay_auth or ("secret" if args.relay_secret else "entra" if given_entra else None)
    if mode == "entra":
        if args.relay_secret:
            raise ProvisionError("--relay-secret is for --relay-auth secret; entra mode needs no shared secret")
        missing = [flag for flag, value in entra.items() if not value]
        if missing:
            raise ProvisionError(f"--relay-auth entra needs {', '.join(missing)}")
        return EntraAuth(
            scope=token_scope(str(args.relay_token_scope)),
            client_id=guid(str(args.relay_identity_client_id), "--relay-identity-client-id"),
            tenant_id=guid(str(args.relay_identity_tenant_id), "--relay-identity-tenant-id"),
        )
    if mode == "secret":
        if given_entra:
            raise ProvisionError(f"{', '.join(given_entra)} belong to --relay-auth entra, not secret")
        # From the environment when not on the command line (a flag's value shows in process listings); only with an
        # explicit --relay-auth secret, so an RTJ_OUTBOUND_SECRET in the shell never switches the mode by itself.
        secret = args.relay_secret or os.environ.get("RTJ_OUTBOUND_SECRET", "").strip()
        if not secret:
            raise ProvisionError(
                "--relay-auth secret needs --relay-secret or RTJ_OUTBOUND_SECRET in the environment (the app's value)"
            )
        return SecretAuth(relay_secret(secret))
    return None


def _rtj_options(args: argparse.Namespace) -> RtjOptions | None:
    if not (args.rtj or args.rtj_only):
        relay_flags = ("--relay-url", "--relay-auth", "--relay-secret", *ENTRA_FLAGS, "--rtj-api-name")
        given = [flag for flag, value in _flag_values(args, relay_flags).items() if value]
        if given:
            raise ProvisionError(f"{', '.join(given)} need --rtj (or --rtj-only)")
        return None
    channel = RtjChannel(
        prefix=args.prefix,
        channel_type=args.rtj_channel_type or ("custom" if args.whatsapp else "sms"),
        api_name=args.rtj_api_name,
        plugin_type=args.relay_plugin_type,
        display_name=args.rtj_display_name,
    )
    return RtjOptions(
        channel=channel,
        relay_url=relay_url(args.relay_url) if args.relay_url else None,
        relay_auth=_relay_auth(args),
    )


def options_from_args(args: argparse.Namespace) -> ProvisionOptions:
    definition = ChannelDefinition(
        prefix=validate_prefix(args.prefix), tile_name=args.tile_name, compliance_column=args.compliance_column
    )
    outbound = not args.rtj_only
    missing = [flag for flag in ("namespace", "queue", "sas_key_name") if outbound and not getattr(args, flag)]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ProvisionError(f"the outbound-marketing steps need {flags} (or pass --rtj-only)")
    source, description = _key_source(args)
    outbound_options = OutboundOptions(
        definition=definition,
        solution=args.solution,
        namespace=_namespace_name(args.namespace or ""),
        queue=args.queue or "",
        sas_key_name=args.sas_key_name or "",
        key_source=source,
        key_source_description=description,
        rotate_key=args.rotate_key,
        contract=args.contract,
        endpoint_name=args.endpoint_name,
        lookup_view_id=args.lookup_view_id,
        quick_view_form_id=args.quick_view_form_id,
    )
    return ProvisionOptions(
        definition=definition,
        solution=args.solution,
        publisher=args.publisher,
        app_user_client_id=args.create_app_user,
        business_unit=args.business_unit,
        app_user_role=args.app_user_role,
        outbound=outbound_options if outbound else None,
        rtj=_rtj_options(args),
        whatsapp=args.whatsapp,
    )


def report(options: ProvisionOptions, result: ProvisionResult, *, dry_run: bool, out: TextIO) -> None:
    definition = options.definition
    w = out.write
    verb = "would change" if dry_run else "changed"
    w(f"\n{len(result.changes)} {verb}" + (": nothing to do\n" if not result.changes else "\n"))
    if options.outbound is not None:
        w("\nFunction app settings that follow from this definition:\n")
        for name, value in definition.app_settings().items():
            w(f"  {name}={value}\n")
        for name, value in (whatsapp_settings(definition) if options.whatsapp else {}).items():
            w(f"  {name}={value}\n")
        w(f"  ACTIVITY_QUEUE_NAME={options.outbound.queue}\n")
    if options.rtj is not None:
        _report_rtj(options.rtj, result, out, dry_run=dry_run)
    for note in result.notes:
        w(f"\nNote: {note}\n")
    w("\nRemaining manual step: the Dataverse application user of the Function app's managed identity\n")
    if options.app_user_client_id:
        w(f"  application user for {options.app_user_client_id}: " + ("would be created" if dry_run else "present"))
        if options.app_user_role:
            w(f"; security role '{options.app_user_role}' assigned (it needs the privileges below).\n")
        else:
            w("; assign it the security role below (or re-run with --app-user-role <name>).\n")
    else:
        w(
            "  Power Platform admin center → the environment → Settings → Users + permissions → Application users →\n"
            "  New app user → App ID = the AZURE_CLIENT_ID output of the infrastructure (azd env get-values),\n"
            "  business unit = the root one (or re-run with --create-app-user <AZURE_CLIENT_ID>).\n"
        )
    w("  Security role (a copy of 'Basic User' or a new role) with:\n")
    if options.outbound is not None:
        for item in PRIVILEGES:
            w(f"    - {item.format(table=definition.table_logical_name)}\n")
    if options.rtj is not None:
        for item in RTJ_PRIVILEGES:
            w(f"    - {item}\n")


def _report_rtj(rtj: RtjOptions, result: ProvisionResult, out: TextIO, *, dry_run: bool) -> None:
    channel = rtj.channel
    w = out.write
    w("\nReal-time journeys channel:\n")
    w(f"  channel definition {channel.channel_definition_id} ({channel.msdyn_channeltype})\n")
    bound = result.rtj is not None and result.rtj.plugin_bound
    w(
        f"  outbound custom API {channel.outbound_endpoint_template} → plug-in {channel.plugin_type}: "
        + (
            ("would be bound\n" if dry_run else "bound\n")
            if bound
            else "NOT bound yet (register the assembly, then run again)\n"
        )
    )
    w(f"  extended tables: {', '.join(t.logical_name for t in channel.extended_tables)}\n")
    roles = result.rtj.roles if result.rtj is not None else {}
    granted = [str(r.get("name")) for matches in roles.values() for r in matches] or list(RTJ_READ_ROLES)
    w(f"  Read on them for: {', '.join(granted)}\n")
    auth = rtj.relay_auth
    if isinstance(auth, EntraAuth):
        identity = result.rtj.relay if result.rtj is not None else None
        w(
            "  Relay authentication: entra. Function app settings: RTJ_AUTH_MODE=entra, "
            f"RTJ_TOKEN_AUDIENCE={auth.audience}, RTJ_TOKEN_TENANT_ID={auth.tenant_id}, "
            f"RTJ_TOKEN_CLIENT_ID={auth.client_id}\n"
        )
        if identity is not None and not identity.assembly_bound:
            w("  The managed identity is not bound to the relay assembly yet (register it, then run again).\n")
        w(
            "  Azure side (not done by this command): on the Entra app registration or user-assigned identity "
            f"{auth.client_id}, add the federated identity credential for the plug-in (Microsoft's \"Set up Power "
            "Platform managed identity\", record version 2: issuer and subject from this environment's id and the "
            "certificate that signs ChannelRelay.dll; see docs/real-time-journeys.md); if the API of "
            f"{auth.scope} requires app role assignment, assign a role to that identity.\n"
        )
    elif isinstance(auth, SecretAuth):
        w(
            "  Relay authentication: secret. Function app settings: RTJ_AUTH_MODE=secret, RTJ_OUTBOUND_SECRET = the "
            f"value of {channel.relay_secret_variable}.\n"
            f"  Note: {channel.relay_secret_variable} is a Text variable: anyone who can read environment variable "
            "values in this org can read it (system administrators and customizers, and any role with Read on "
            "Environment Variable Value). --relay-auth entra needs no shared secret.\n"
        )


def main(argv: list[str] | None = None, *, out: TextIO | None = None, client: Any = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    if args.secret_name and not args.key_vault:
        print("channel provision: --secret-name needs --key-vault", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        out.write(text + "\n")

    if args.application_user:
        from cli.provision_app_user import run_application_user

        return run_application_user(args, _parser(), client, out)
    missing = [flag for flag in ("--prefix", "--solution") if not getattr(args, flag.removeprefix("--"))]
    if missing:
        _parser().error(f"the following arguments are required: {', '.join(missing)}")
    try:
        options = options_from_args(args)
        url = _check_url(args.dataverse_url)
        gateway = Gateway(client or _client(url), dry_run=args.dry_run, echo=say if args.dry_run else None)
        if args.dry_run:
            say(f"# dry run: reads are made, writes are only printed ({url})")
        result = Provisioner(gateway, options, say=say).run()
    except (ProvisionError, SecretError, ValueError) as exc:
        print(f"channel provision: {exc}", file=sys.stderr)
        return 1
    except (DataverseError, TransientError) as exc:
        print(f"channel provision: Dataverse refused a request: {exc}", file=sys.stderr)
        return 1
    if options.outbound is not None and (args.print_tile or args.dry_run):
        say(f"\nTile XML ({options.definition.web_resource_name}):\n{result.tile}")
    report(options, result, dry_run=args.dry_run, out=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
