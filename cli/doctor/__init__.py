"""``channel doctor``: check every setting and every dependency the channel needs, and say how to fix each problem.

Checks, in order: the app settings; settings still holding an unresolved ``@Microsoft.KeyVault(...)`` reference; a
Dataverse token; ``WhoAmI``; the org's ``$metadata`` for ``msdyncrm_CustomChannelActivityCreateInteraction`` (its
real parameter list against the app's call, which INTERACTION_ACTION_SIGNATURE selects); the channel's message table
(``--message-table``, else the one the most recent Custom Channel Activity row names) and MESSAGE_BODY_COLUMN on it;
the contact phone and compliance columns; when real-time journeys is configured (RTJ_OUTBOUND_SECRET,
RTJ_TOKEN_AUDIENCE or RTJ_TOKEN_CLIENT_ID set, or ``--rtj-custom-api``), the relay authentication settings that
RTJ_AUTH_MODE needs, ``msdyn_D365ChannelsNotification`` and
``msdyn_D365ChannelsInbound`` in ``$metadata`` and the outbound custom API (``--rtj-custom-api``); the state table (a
probe entity is written, read and deleted); the activity, callback and poison queues (active and dead-letter counts);
the provider credentials. Each check prints ``ok``, ``problem`` with the fix, or ``skipped`` with the reason; the exit
code is 1 when any check found a problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import requests

from cli.common import ServiceBusFactory, read_environ
from cli.doctor.azure_checks import check_queues, check_state_table
from cli.doctor.config import RTJ_SETTINGS, check_key_vault_references, check_settings, rtj_configured
from cli.doctor.dataverse_checks import (
    MetadataError,
    check_body_column,
    check_contact_columns,
    check_interaction_action,
    check_message_table,
    check_whoami,
    connect,
    read_actions,
)
from cli.doctor.metadata import (
    ActionParameter,
    compare_signature,
    parse_action_parameters,
    rtj_action_calls,
)
from cli.doctor.org_access import OrgTokenSource, key_vault_reader, open_table, org_dataverse_tokens
from cli.doctor.org_checks import (
    ORG_SKIPPED,
    OrgTarget,
    SecretReaderFactory,
    check_enabled,
    check_multi_org,
    check_org_id,
    check_org_settings,
    check_registered,
    check_secrets,
)
from cli.doctor.provider import check_provider
from cli.doctor.results import CheckResult, ok, problem, render, skipped
from cli.doctor.rtj import CUSTOM_API_CHECK, check_custom_api, check_relay_auth, check_rtj_action, custom_api_name
from cli.doctor.whatsapp import check_template_columns
from shared.adapters.dataverse import ACTION
from shared.adapters.tokens import TokenCredentialLike
from shared.orgs.registry import OrgRegistry, OrgTable
from shared.settings import Settings

__all__ = [
    "ActionParameter",
    "CheckResult",
    "DoctorOptions",
    "check_queues",
    "check_settings",
    "compare_signature",
    "main",
    "ok",
    "parse_action_parameters",
    "problem",
    "render",
    "run_checks",
    "skipped",
]

UNAVAILABLE = "Dataverse unavailable"


@dataclass(frozen=True)
class DoctorOptions:
    """What the operator passed: the message table, the outbound custom API's unique name."""

    message_table: str | None = None
    rtj_custom_api: str | None = None
    org: str | None = None  # --org: every check against that registered org's effective settings


@dataclass(frozen=True)
class OrgAccess:
    """How ``--org`` reaches the registry, the org's Dataverse and its Key Vault secrets (tests inject doubles)."""

    table: OrgTable | None = None
    tokens: OrgTokenSource | None = None
    secrets: SecretReaderFactory | None = None


def run_checks(
    environ: Mapping[str, str],
    options: DoctorOptions = DoctorOptions(),  # frozen, never mutated
    *,
    servicebus: ServiceBusFactory | None = None,
    credential: TokenCredentialLike | None = None,
    session: requests.Session | None = None,
    access: OrgAccess = OrgAccess(),  # frozen, never mutated
) -> list[CheckResult]:
    """Every check, in the documented order. Tests inject ``servicebus`` (an SDK double) and ``credential``."""
    results, settings = check_settings(environ)
    results += check_key_vault_references(environ)
    if settings is None:
        return [*results, skipped("others", "fix the settings first")]
    session = session or requests.Session()
    if options.org is not None:
        return results + run_org_checks(settings, environ, options, servicebus, credential, session, access)
    if settings.multi_org and not settings.dataverse_url:
        results.append(skipped("dataverse", "MULTI_ORG=true: check each org with --org <id> (channel org list)"))
    else:
        results += run_dataverse_checks(settings, environ, options, credential, session)
    return results + _shared_resource_checks(settings, servicebus) + [check_provider(settings, session)]


def _shared_resource_checks(settings: Settings, servicebus: ServiceBusFactory | None) -> list[CheckResult]:
    """The deployment's own resources, the same for every org: the state table and the queues."""
    return [check_state_table(settings), *check_queues(settings, servicebus)]


def run_org_checks(
    base: Settings,
    environ: Mapping[str, str],
    options: DoctorOptions,
    servicebus: ServiceBusFactory | None,
    credential: TokenCredentialLike | None,
    session: requests.Session,
    access: OrgAccess,
) -> list[CheckResult]:
    """``--org``: the org checks, then every usual check against the org's effective settings."""
    results = [check_multi_org(base)]
    registry = OrgRegistry(access.table if access.table is not None else open_table(base), base, cache_seconds=0)
    found, record = check_registered(registry, str(options.org))
    results.append(found)
    if record is None:
        return [*results, ORG_SKIPPED]
    results.append(check_enabled(record))
    readers = access.secrets or (lambda settings: key_vault_reader(settings, credential=credential))
    secret_results, reader = check_secrets(base, record, readers)
    results += secret_results
    valid, settings = check_org_settings(base, record, reader)
    results.append(valid)
    if settings is None:
        return [*results, ORG_SKIPPED]
    source = access.tokens or (lambda s, r: org_dataverse_tokens(s, r, credential=credential))
    org_settings = settings
    target = OrgTarget(record.org_id, tokens=lambda: source(org_settings, record))
    # RTJ counts as configured for the org when its own row sets the relay settings too.
    org_environ = {**environ, **record.overrides, **{name: "(Key Vault)" for name in record.secret_names}}
    results += run_dataverse_checks(settings, org_environ, options, credential, session, target)
    results += _shared_resource_checks(settings, servicebus)
    if record.own_provider_credentials and reader is None:
        results.append(
            skipped(
                f"provider:{settings.channel_provider}",
                "the org's own provider secrets could not be read (see org-secret)",
            )
        )
    else:
        results.append(check_provider(settings, session))
    return results


def run_dataverse_checks(
    settings: Settings,
    environ: Mapping[str, str],
    options: DoctorOptions,
    credential: TokenCredentialLike | None,
    session: requests.Session,
    org: OrgTarget | None = None,
) -> list[CheckResult]:
    """Builds the one Dataverse client and passes it to each check that needs it (``org``: that org's token, and
    WhoAmI must answer with its id)."""
    rtj_calls = rtj_action_calls() if rtj_configured(environ, options.rtj_custom_api) else None
    if org is None:
        token, client = connect(settings, credential, session)
    else:
        token, client = connect(settings, credential, session, tokens=org.tokens, token_fix=org.token_fix)
    after_whoami = ["org-id"] if org is not None else []
    if client is None:
        return [token, *_unavailable(["whoami", *after_whoami, "interaction-action", "message-table"], rtj_calls)]
    whoami = check_whoami(client, settings)
    if whoami.is_problem:
        return [token, whoami, *_unavailable([*after_whoami, "interaction-action", "message-table"], rtj_calls)]
    results = [token, whoami]
    if org is not None:
        results.append(check_org_id(client, org.org_id))
    actions = read_actions(client, [ACTION, *(rtj_calls or {})])
    if isinstance(actions, MetadataError):
        results.append(actions.result("interaction-action"))
    else:
        results.append(check_interaction_action(actions[ACTION], settings.interaction_action_signature))
    table_check, table = check_message_table(client, options.message_table)
    results.append(table_check)
    if table is None:
        results.append(skipped("message-body-column", "message table unknown"))
    else:
        results.append(check_body_column(client, table, settings))
        results.extend(check_template_columns(client, table, settings))  # WhatsApp template columns (issue #17)
    results.extend(check_contact_columns(client, settings))
    if rtj_calls is None:
        return [*results, RTJ_NOT_CONFIGURED]
    results.append(check_relay_auth(settings))
    results += [check_rtj_action(action, actions, sent) for action, sent in rtj_calls.items()]
    results.append(check_custom_api(client, options.rtj_custom_api))
    return results


RTJ_NOT_CONFIGURED = skipped(
    "real-time-journeys", f"not configured (none of {', '.join(RTJ_SETTINGS)} is set, no --rtj-custom-api)"
)


def _unavailable(names: list[str], rtj_calls: dict[str, dict[str, str]] | None) -> list[CheckResult]:
    """What is skipped when Dataverse cannot be reached (the message table is then unknown too)."""
    results = [skipped(name, UNAVAILABLE) for name in names]
    results.append(skipped("message-body-column", "message table unknown"))
    results.append(skipped("contact-columns", UNAVAILABLE))
    if rtj_calls is None:
        return [*results, RTJ_NOT_CONFIGURED]
    rtj_names = [*(f"rtj:{action}" for action in rtj_calls), CUSTOM_API_CHECK]
    return results + [skipped(name, UNAVAILABLE) for name in rtj_names]


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    servicebus: ServiceBusFactory | None = None,
    credential: TokenCredentialLike | None = None,
    access: OrgAccess = OrgAccess(),  # frozen, never mutated
    out: TextIO | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog="channel doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--message-table",
        help="logical name of the channel's message table (default: the table "
        "the most recent Custom Channel Activity row names)",
    )
    parser.add_argument(
        "--rtj-custom-api",
        type=custom_api_name,
        metavar="UNIQUE_NAME",
        help="unique name of the real-time journeys outbound custom API to check (channel provision's "
        "--rtj-api-name; default there <prefix>_ChannelOutbound)",
    )
    parser.add_argument(
        "--settings", metavar="FILE", help="read settings from a local.settings.json (environment wins)"
    )
    parser.add_argument(
        "--org",
        metavar="ORG_ID",
        help="run every check against this registered org (MULTI_ORG; its URL, token, overrides and secrets)",
    )
    args = parser.parse_args(argv)
    results = run_checks(
        environ if environ is not None else read_environ(args.settings),
        DoctorOptions(message_table=args.message_table, rtj_custom_api=args.rtj_custom_api, org=args.org),
        servicebus=servicebus,
        credential=credential,
        access=access,
    )
    return render(results, out or sys.stdout)
