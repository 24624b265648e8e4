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
from cli.doctor.provider import check_provider
from cli.doctor.results import CheckResult, ok, problem, render, skipped
from cli.doctor.rtj import CUSTOM_API_CHECK, check_custom_api, check_relay_auth, check_rtj_action, custom_api_name
from cli.doctor.whatsapp import check_template_columns
from shared.adapters.dataverse import ACTION
from shared.adapters.tokens import TokenCredentialLike
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


def run_checks(
    environ: Mapping[str, str],
    options: DoctorOptions = DoctorOptions(),  # frozen, never mutated
    *,
    servicebus: ServiceBusFactory | None = None,
    credential: TokenCredentialLike | None = None,
    session: requests.Session | None = None,
) -> list[CheckResult]:
    """Every check, in the documented order. Tests inject ``servicebus`` (an SDK double) and ``credential``."""
    results, settings = check_settings(environ)
    results += check_key_vault_references(environ)
    if settings is None:
        return [*results, skipped("others", "fix the settings first")]
    session = session or requests.Session()
    results += run_dataverse_checks(settings, environ, options, credential, session)
    results.append(check_state_table(settings))
    results.extend(check_queues(settings, servicebus))
    results.append(check_provider(settings, session))
    return results


def run_dataverse_checks(
    settings: Settings,
    environ: Mapping[str, str],
    options: DoctorOptions,
    credential: TokenCredentialLike | None,
    session: requests.Session,
) -> list[CheckResult]:
    """Builds the one Dataverse client and passes it to each check that needs it."""
    rtj_calls = rtj_action_calls() if rtj_configured(environ, options.rtj_custom_api) else None
    token, client = connect(settings, credential, session)
    if client is None:
        return [token, *_unavailable(["whoami", "interaction-action", "message-table"], rtj_calls)]
    whoami = check_whoami(client, settings)
    if whoami.is_problem:
        return [token, whoami, *_unavailable(["interaction-action", "message-table"], rtj_calls)]
    org = read_actions(client, [ACTION, *(rtj_calls or {})])
    results = [token, whoami]
    if isinstance(org, MetadataError):
        results.append(org.result("interaction-action"))
    else:
        results.append(check_interaction_action(org[ACTION], settings.interaction_action_signature))
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
    results += [check_rtj_action(action, org, sent) for action, sent in rtj_calls.items()]
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
    args = parser.parse_args(argv)
    results = run_checks(
        environ if environ is not None else read_environ(args.settings),
        DoctorOptions(message_table=args.message_table, rtj_custom_api=args.rtj_custom_api),
        servicebus=servicebus,
        credential=credential,
    )
    return render(results, out or sys.stdout)
