"""Real-time journeys checks (run when RTJ is configured): the base solution's delivery-report and inbound actions
as the app calls them, and the outbound custom API that ``channel provision --rtj`` creates, looked up by name."""

from __future__ import annotations

import argparse
import re
from typing import Any

from cli.doctor.dataverse_checks import MetadataError, OrgActions
from cli.doctor.metadata import compare_parameters, describe
from cli.doctor.results import CheckResult, ok, problem, skipped
from provisioning.rtj_definition import (
    CUSTOM_API_BINDING_GLOBAL,
    CUSTOM_API_STRING,
    PAYLOAD_PARAMETER,
    RESPONSE_PROPERTY,
)
from shared.adapters.dataverse import DataverseClient
from shared.domain.errors import DataverseError, TransientError
from shared.settings import Settings

CUSTOM_API_CHECK = "rtj:custom-api"
_UNIQUE_NAME = re.compile(r"^[A-Za-z0-9]+_[A-Za-z0-9_]+$")
_REPROVISION = (
    "delete the custom API (make.powerapps.com → the solution → Custom APIs) and run `channel provision --rtj` "
    "again: these columns cannot change after creation"
)


def custom_api_name(value: str) -> str:
    """``--rtj-custom-api``: a custom API unique name (``<prefix>_<Name>``)."""
    value = value.strip()
    if not _UNIQUE_NAME.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a custom API unique name such as cr123_ChannelOutbound")
    return value


def check_rtj_action(action: str, org: OrgActions | MetadataError, sent: dict[str, str]) -> CheckResult:
    """One real-time journeys base action of the org against the call the app makes (``sent``: name → type)."""
    name = f"rtj:{action}"
    if isinstance(org, MetadataError):
        return org.result(name)
    parameters = org.get(action)
    if parameters is None:
        return problem(
            name,
            f"the org has no action {action}",
            "real-time journeys (Dynamics 365 Customer Insights - Journeys) is not installed in this environment, or "
            "DATAVERSE_URL names another org: install it there or correct DATAVERSE_URL",
        )
    listing = describe(parameters)
    issues = compare_parameters(parameters, sent)
    if issues:
        return problem(
            name,
            f"the org's {action} does not take the call the app makes: " + "; ".join(issues),
            "the org's base solution differs from the documented contract the app follows (Customer Insights - "
            "Journeys custom channel docs): update the solution, or report it with the parameter list above",
            listing,
        )
    return ok(name, f"{action} takes " + ", ".join(f"{p} ({t})" for p, t in sent.items()), listing)


def check_custom_api(client: DataverseClient, unique_name: str | None) -> CheckResult:
    """The outbound custom API journeys call: exists, global action, relay plug-in bound, ``payload`` → ``response``."""
    if not unique_name:
        return skipped(
            CUSTOM_API_CHECK,
            "pass --rtj-custom-api <unique name> to check the outbound custom API (channel provision's "
            "--rtj-api-name; default <prefix>_ChannelOutbound)",
        )
    try:
        found = _rows(
            client,
            "customapis",
            "customapiid,uniquename,bindingtype,isfunction,_plugintypeid_value",
            f"uniquename eq '{unique_name}'",
        )
        if not found:
            return problem(
                CUSTOM_API_CHECK,
                f"custom API {unique_name} does not exist in this org",
                f"run `channel provision --rtj --rtj-api-name {unique_name} …` (docs/real-time-journeys.md), or pass "
                "the unique name the channel definition's outbound endpoint names (without the leading /)",
            )
        api = found[0]
        api_filter = f"_customapiid_value eq {api['customapiid']}"
        parameters = _rows(client, "customapirequestparameters", "uniquename,type", api_filter)
        properties = _rows(client, "customapiresponseproperties", "uniquename,type", api_filter)
    except (TransientError, DataverseError) as exc:
        return problem(
            CUSTOM_API_CHECK, f"cannot read custom API {unique_name}: {exc}", "check the Dataverse checks above"
        )
    issues: list[str] = []
    fixes: list[str] = []
    if api.get("bindingtype") != CUSTOM_API_BINDING_GLOBAL or api.get("isfunction"):
        issues.append("it is not a global action (bindingtype 0, isfunction false), which journeys call")
        fixes.append(_REPROVISION)
    for kind, rows, member in (
        ("request parameter", parameters, PAYLOAD_PARAMETER),
        ("response property", properties, RESPONSE_PROPERTY),
    ):
        row = next((r for r in rows if r.get("uniquename") == member), None)
        if row is None or row.get("type") != CUSTOM_API_STRING:
            state = "is missing" if row is None else f"has type {row.get('type')}, not {CUSTOM_API_STRING} (String)"
            issues.append(f"its {kind} {member} {state}")
            fixes.append(
                "run `channel provision --rtj` again (it adds a missing one; a wrong type: delete that row first)"
            )
    if not api.get("_plugintypeid_value"):
        issues.append("no plug-in is bound, so journeys get an empty response")
        fixes.append(
            "build and register ChannelRelay.dll (rtj-relay/README.md), then run `channel provision --rtj` again: it "
            "binds the plug-in to the custom API"
        )
    if issues:
        return problem(
            CUSTOM_API_CHECK, f"custom API {unique_name}: " + "; ".join(issues), "; ".join(dict.fromkeys(fixes))
        )
    return ok(
        CUSTOM_API_CHECK,
        f"custom API {unique_name}: global action, {PAYLOAD_PARAMETER} → {RESPONSE_PROPERTY} (String), plug-in bound",
    )


def _rows(client: DataverseClient, entity_set: str, select: str, where: str) -> list[dict[str, Any]]:
    response = client.request(
        "GET", entity_set, params={"$select": select, "$filter": where}, operation=f"read {entity_set}"
    )
    rows: list[dict[str, Any]] = response.json().get("value", [])
    return rows


RELAY_AUTH_CHECK = "rtj:relay-auth"


def check_relay_auth(settings: Settings) -> CheckResult:
    """The settings ``POST /api/rtj/outbound`` needs in its RTJ_AUTH_MODE (it answers 503 naming them until set)."""
    mode = settings.rtj_auth_mode
    missing = settings.rtj_auth_missing
    if missing:
        if mode == "entra":
            fix = (
                "set them to the relay plug-in identity's tenant and app (client) id and the audience its token is "
                "for (`azd env set RTJ_TOKEN_CLIENT_ID <id>` … then `azd provision`), or choose the shared secret "
                "with RTJ_AUTH_MODE=secret; see docs/real-time-journeys.md#relay-authentication"
            )
        else:
            fix = (
                "set RTJ_OUTBOUND_SECRET (at least 24 random characters; the same value as the relay's "
                "<prefix>_ChannelRelaySecret variable), or use RTJ_AUTH_MODE=entra"
            )
        return problem(
            RELAY_AUTH_CHECK,
            f"RTJ_AUTH_MODE={mode} needs {', '.join(missing)}: the outbound endpoint refuses every relay call (503)",
            fix,
        )
    if mode == "entra":
        return ok(
            RELAY_AUTH_CHECK,
            f"entra: tokens for {settings.rtj_token_audience} from app {settings.rtj_token_client_id} "
            f"in tenant {settings.rtj_token_tenant_id}",
        )
    return ok(RELAY_AUTH_CHECK, "secret: X-Channel-Secret compared with RTJ_OUTBOUND_SECRET")
