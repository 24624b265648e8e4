"""Dataverse checks. :func:`connect` builds the one client (the shared token selection); every other check takes
that client and what it needs as arguments, so no check relies on another having run first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from xml.etree import ElementTree

import requests

from cli.doctor.metadata import (
    SIGNATURES,
    ActionParameter,
    compare_signature,
    describe,
    parse_actions,
)
from cli.doctor.results import CheckResult, ok, problem
from shared.adapters.dataverse import ACTION, DataverseClient
from shared.adapters.tokens import StaticToken, TokenCredentialLike, dataverse_tokens
from shared.domain.errors import DataverseError, NotFound, TransientError
from shared.domain.models import ACTIVITY_ENTITY
from shared.settings import Settings

TEXT_TYPES = frozenset({"String", "Memo"})


DATAVERSE_AUTH_FIX = (
    "locally: `az login` with an account that is an application user in the org; in Azure: set "
    "AZURE_CLIENT_ID to the client id of the app's user-assigned managed identity"
)


class TokenSource(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


def connect(
    settings: Settings,
    credential: TokenCredentialLike | None,
    session: requests.Session,
    *,
    tokens: Callable[[], TokenSource] | None = None,
    token_fix: str = DATAVERSE_AUTH_FIX,
) -> tuple[CheckResult, DataverseClient | None]:
    """The ``dataverse-token`` check, and the client every later Dataverse check uses (None when no token).

    ``tokens`` builds the token source instead of :func:`dataverse_tokens` (``doctor --org``: the org's own)."""
    name = "dataverse-token"
    try:
        source: TokenSource = (
            tokens()
            if tokens is not None
            else dataverse_tokens(
                settings.dataverse_url,
                static_token=settings.dataverse_static_token,
                client_id=settings.azure_client_id,
                credential=credential,
            )
        )
        if isinstance(source, StaticToken):
            detail = "DATAVERSE_STATIC_TOKEN (loopback emulator)"
        else:
            source.token()
            detail = f"token acquired for {getattr(source, 'scope', settings.dataverse_scope)}"
    except Exception as exc:  # noqa: BLE001 - whatever azure-identity raises is the finding
        return problem(
            name,
            f"no token for {settings.dataverse_scope}: {exc.__class__.__name__}: {str(exc)[:300]}",
            token_fix,
        ), None
    client = DataverseClient(
        settings.dataverse_url,
        source,
        session=session,
        timeout=min(settings.dataverse_timeout_seconds, 15.0),
        max_retries=1,
        max_wait_seconds=5.0,
        signature=settings.interaction_action_signature,
    )
    return ok(name, detail), client


def check_whoami(client: DataverseClient, settings: Settings) -> CheckResult:
    try:
        who = client.whoami()
    except TransientError as exc:
        return problem(
            "whoami",
            f"cannot reach Dataverse at {settings.dataverse_url}: {exc}",
            "check DATAVERSE_URL (the environment URL, e.g. https://contoso.crm.dynamics.com) and that this "
            "machine / the app can reach it",
        )
    except DataverseError as exc:
        if exc.status == 401:
            fix = (
                "the org rejected the token: check that DATAVERSE_URL is the org where the identity is an "
                "application user (Power Platform admin center → Application users) and that AZURE_CLIENT_ID "
                "(or DATAVERSE_STATIC_TOKEN for the emulator) is right"
            )
        elif exc.status == 403:
            fix = "give the application user a security role (and make sure it is enabled)"
        else:
            fix = "check DATAVERSE_URL: it must be a Dataverse environment URL"
        return problem("whoami", f"WhoAmI failed: HTTP {exc.status} {exc.code} {exc.message}".strip(), fix)
    return ok("whoami", f"UserId {who.get('UserId')} OrganizationId {who.get('OrganizationId')}")


@dataclass(frozen=True)
class MetadataError:
    """``$metadata`` could not be read: every check that needs it reports this."""

    detail: str
    fix: str

    def result(self, name: str) -> CheckResult:
        return problem(name, self.detail, self.fix)


OrgActions = dict[str, list[ActionParameter] | None]


def read_actions(client: DataverseClient, names: Iterable[str]) -> OrgActions | MetadataError:
    """The org's parameter lists of ``names`` from one ``$metadata`` read."""
    try:
        response = client.request("GET", "$metadata", operation="metadata", headers={"Accept": "application/xml"})
        return parse_actions(response.content, names)
    except (TransientError, DataverseError) as exc:
        return MetadataError(f"cannot read $metadata: {exc}", "check the Dataverse checks above")
    except ElementTree.ParseError as exc:
        return MetadataError(f"$metadata is not CSDL XML: {exc}", "check DATAVERSE_URL")


def check_interaction_action(org: list[ActionParameter] | None, current: str) -> CheckResult:
    """The org's CreateInteraction against the call INTERACTION_ACTION_SIGNATURE=``current`` makes."""
    name = "interaction-action"
    if org is None:
        return problem(
            name,
            f"the org has no action {ACTION}",
            "the Customer Insights - Journeys (outbound marketing) solution that defines it is not installed in "
            "this environment; check DATAVERSE_URL",
        )
    listing = describe(org)
    issues = compare_signature(org, current)
    if not issues:
        return ok(name, f"{ACTION} matches INTERACTION_ACTION_SIGNATURE={current}", listing)
    matching = [s for s in SIGNATURES if s != current and not compare_signature(org, s)]
    fix = (
        f"set INTERACTION_ACTION_SIGNATURE={matching[0]} (it matches the org's parameter list)"
        if matching
        else "neither documented signature matches the org's parameter list: report it with the list above"
    )
    detail = f"INTERACTION_ACTION_SIGNATURE={current} does not match the org's {ACTION}: " + "; ".join(issues)
    return problem(name, detail, fix, listing)


def entity_definition(client: DataverseClient, logical_name: str) -> dict[str, Any] | None:
    try:
        response = client.request(
            "GET",
            f"EntityDefinitions(LogicalName='{logical_name}')",
            params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute"},
            operation=f"metadata {logical_name}",
        )
    except NotFound:
        return None
    result: dict[str, Any] = response.json()
    return result


def latest_message_table(client: DataverseClient) -> tuple[str, str] | None:
    """``(msdyncrm_entitytype, msdyncrm_entityid)`` of the most recent Custom Channel Activity row, if any."""
    definition = entity_definition(client, ACTIVITY_ENTITY)
    if definition is None:
        raise NotFound(404, "", f"table {ACTIVITY_ENTITY} does not exist in this org", "metadata")
    response = client.request(
        "GET",
        str(definition["EntitySetName"]),
        params={
            "$select": "msdyncrm_entitytype,msdyncrm_entityid",
            "$orderby": "createdon desc",
            "$top": "1",
        },
        operation="latest activity",
    )
    rows = response.json().get("value", [])
    if not rows or not rows[0].get("msdyncrm_entitytype"):
        return None
    return str(rows[0]["msdyncrm_entitytype"]), str(rows[0].get("msdyncrm_entityid") or "")


@dataclass(frozen=True)
class Table:
    logical_name: str
    entity_set: str


def check_message_table(client: DataverseClient, table: str | None) -> tuple[CheckResult, Table | None]:
    """``--message-table``, else the table the most recent activity row names; the table for the column check."""
    name = "message-table"
    source = "--message-table"
    try:
        if not table:
            latest = latest_message_table(client)
            if latest is None:
                return problem(
                    name,
                    "no Custom Channel Activity row yet, so the message table is unknown",
                    "pass --message-table <logical name of the channel's message table> (e.g. cr123_smsmessage)",
                ), None
            table, source = latest[0], f"the most recent activity row (message {latest[1]})"
        definition = entity_definition(client, table)
    except (TransientError, DataverseError) as exc:
        return problem(name, f"cannot resolve the message table: {exc}", "pass --message-table <logical name>"), None
    if definition is None:
        return problem(
            name,
            f"message table '{table}' (from {source}) does not exist",
            "pass the logical name of the table the channel's messages live in (--message-table)",
        ), None
    found = Table(table, str(definition["EntitySetName"]))
    return ok(name, f"{table} (entity set {found.entity_set}, from {source})"), found


def column_status(client: DataverseClient, table: str, entity_set: str, column: str) -> tuple[bool, str | None]:
    """Whether ``column`` exists on ``table``, and its AttributeType when the metadata endpoint tells it.

    ``EntityDefinitions(...)/Attributes(...)`` first; when that answers 404/400 (missing attribute, or an
    endpoint that doesn't serve attribute metadata), the read the app itself makes decides:
    ``GET <set>?$select=<column>&$top=1`` fails with 400 for an unknown column.
    """
    try:
        response = client.request(
            "GET",
            f"EntityDefinitions(LogicalName='{table}')/Attributes(LogicalName='{column}')",
            params={"$select": "LogicalName,AttributeType"},
            operation=f"metadata {table}.{column}",
        )
        attribute_type = response.json().get("AttributeType")
        return True, str(attribute_type) if attribute_type else None
    except DataverseError as exc:
        if exc.status not in (400, 404):
            raise
    try:
        client.request("GET", entity_set, params={"$select": column, "$top": "1"}, operation=f"read {table}.{column}")
    except DataverseError as exc:
        if exc.status == 400:
            return False, None
        raise
    return True, None


@dataclass(frozen=True)
class ColumnCheck:
    """One setting that names a column: the check's name, the setting, the column types it accepts."""

    name: str
    setting: str
    wanted_types: frozenset[str]
    wanted: str

    def run(self, client: DataverseClient, table: Table, column: str) -> CheckResult:
        name, setting, wanted, logical = self.name, self.setting, self.wanted, table.logical_name
        try:
            exists, attribute_type = column_status(client, logical, table.entity_set, column)
        except (TransientError, DataverseError) as exc:
            return problem(name, f"cannot check {logical}.{column}: {exc}", "check the Dataverse checks above")
        if not exists:
            return problem(
                name,
                f"{setting} '{column}' is missing: table {logical} has no column {column}",
                f"set {setting} to the logical name of the {wanted} column of {logical} (Power Apps → Tables → "
                f"{logical} → Columns → the column's logical name)",
            )
        if attribute_type and attribute_type not in self.wanted_types:
            return problem(
                name,
                f"{setting} '{column}' on {logical} is a {attribute_type} column, not a {wanted} column",
                f"set {setting} to a {wanted} column of {logical}",
            )
        return ok(name, f"{logical}.{column} exists" + (f" ({attribute_type})" if attribute_type else ""))


BODY_COLUMN = ColumnCheck("message-body-column", "MESSAGE_BODY_COLUMN", TEXT_TYPES, "text")
PHONE_COLUMN = ColumnCheck("contact-phone-column", "CONTACT_PHONE_COLUMN", frozenset({"String"}), "text (phone)")
COMPLIANCE_COLUMN = ColumnCheck("compliance-column", "COMPLIANCE_COLUMN", frozenset({"Boolean"}), "Yes/No (Boolean)")


def check_body_column(client: DataverseClient, table: Table, settings: Settings) -> CheckResult:
    return BODY_COLUMN.run(client, table, settings.message_body_column)


def check_contact_columns(client: DataverseClient, settings: Settings) -> list[CheckResult]:
    try:
        definition = entity_definition(client, "contact")
    except (TransientError, DataverseError) as exc:
        return [problem("contact-columns", f"cannot read the contact table: {exc}", "check the checks above")]
    if definition is None:
        return [problem("contact-columns", "the org has no contact table", "check DATAVERSE_URL")]
    contact = Table("contact", str(definition["EntitySetName"]))
    return [
        PHONE_COLUMN.run(client, contact, settings.contact_phone_column),
        COMPLIANCE_COLUMN.run(client, contact, settings.compliance_column),
    ]
