"""``channel doctor``: check every setting and every dependency the channel needs, and say how to fix each problem.

Checks, in order: the app settings; a Dataverse token; ``WhoAmI``; the org's ``$metadata`` for
``msdyncrm_CustomChannelActivityCreateInteraction`` (its real parameter list against the app's call, which
INTERACTION_ACTION_SIGNATURE selects); the channel's message table (``--message-table``, else the one the most
recent Custom Channel Activity row names) and MESSAGE_BODY_COLUMN on it; the contact phone and compliance columns;
the state table (a probe entity is written, read and deleted); the activity, callback and poison queues (active and
dead-letter counts); the provider credentials. Each check prints ``ok`` or ``problem`` with the fix; the exit code is
1 when any check found a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from xml.etree import ElementTree

import requests

from cli.common import SdkServiceBus, ServiceBusFactory, read_environ
from shared.adapters.dataverse import ACTION, DataverseClient, interaction_body
from shared.domain.errors import DataverseError, NotFound, TransientError
from shared.domain.models import ACTIVITY_ENTITY, ActivityRef, Interaction, ResponseType
from shared.settings import ConfigurationError, Settings, load_settings

Status = Literal["ok", "problem", "skipped"]
SIGNATURES = ("customerjourney", "campaign")
TEXT_TYPES = frozenset({"String", "Memo"})

SETTING_FIXES = {
    "DATAVERSE_URL": "set it to the environment URL only, e.g. https://contoso.crm.dynamics.com (Power Platform "
    "admin center → Environments → Environment URL)",
    "DATAVERSE_STATIC_TOKEN": "remove it: a fixed token is only for the loopback emulators; in Azure the managed "
    "identity (AZURE_CLIENT_ID) is used",
    "ServiceBusConnection": "set ServiceBusConnection to a connection string with Listen + Send on the three "
    "queues, or ServiceBusConnection__fullyQualifiedNamespace=<ns>.servicebus.windows.net",
    "AzureWebJobsStorage": "set AzureWebJobsStorage (UseDevelopmentStorage=true with Azurite), or "
    "AzureWebJobsStorage__accountName for an identity-based connection",
    "ACTIVITY_QUEUE_NAME": "set it to the queue the Dataverse service endpoint posts to",
    "CHANNEL_PROVIDER": "set CHANNEL_PROVIDER=twilio (or loopback for local runs)",
    "CALLBACK_BASE_URL": "set it to the public https base URL of the app, e.g. https://myapp.azurewebsites.net",
    "MESSAGE_BODY_COLUMN": "set it to the logical name of the text column of the channel's message table, e.g. "
    "cr123_body",
    "TWILIO_ACCOUNT_SID": "copy the Account SID (AC…) from the Twilio console",
    "TWILIO_AUTH_TOKEN": "copy the Auth Token from the Twilio console (in Azure: a Key Vault reference)",
    "TWILIO_FROM": "set TWILIO_FROM to an E.164 number (+14155550100), an alphanumeric sender or whatsapp:+E164, "
    "or use TWILIO_MESSAGING_SERVICE_SID instead",
    "TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID": "set exactly one of TWILIO_FROM and TWILIO_MESSAGING_SERVICE_SID",
    "LOOPBACK_PROVIDER_URL": "start the loopback gateway (devtools/emulators/loopback_provider.py) and set its URL",
    "LOOPBACK_SIGNING_KEY": "set the key the loopback gateway was started with",
}
DEFAULT_SETTING_FIX = "see README 'Settings' and local.settings.json.example for the expected value"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok`` / ``problem`` (with ``fix``) / ``skipped`` (an earlier check failed)."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    lines: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        return self.status == "problem"


def ok(name: str, detail: str, *lines: str) -> CheckResult:
    return CheckResult(name, "ok", detail, lines=lines)


def problem(name: str, detail: str, fix: str, *lines: str) -> CheckResult:
    return CheckResult(name, "problem", detail, fix, lines)


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, "skipped", reason)


@dataclass
class DoctorContext:
    """What the checks share. Tests inject ``servicebus`` (an SDK double), ``credential`` and ``session``."""

    environ: Mapping[str, str]
    message_table: str | None = None
    servicebus: ServiceBusFactory | None = None
    credential: Any = None
    session: requests.Session = field(default_factory=requests.Session)
    settings: Settings | None = None
    dataverse: DataverseClient | None = None
    message_entity_set: str | None = None


# ------------------------------------------------------------------------------------------------- settings
def check_settings(environ: Mapping[str, str]) -> tuple[list[CheckResult], Settings | None]:
    try:
        settings = load_settings(dict(environ))
    except ConfigurationError as exc:
        results = []
        for item in str(exc).removeprefix("Invalid app settings: ").split("; "):
            setting = item.split(":", 1)[0].strip() if ":" in item else ""
            fix = SETTING_FIXES.get(setting, DEFAULT_SETTING_FIX)
            results.append(problem("settings", item, fix))
        return results, None
    detail = (
        f"all settings valid (provider {settings.channel_provider}, action signature "
        f"{settings.interaction_action_signature}, queues {settings.activity_queue_name} / "
        f"{settings.callback_queue_name} / {settings.poison_queue_name})"
    )
    return [ok("settings", detail)], settings


# ------------------------------------------------------------------------------------------------- Dataverse
def check_token(ctx: DoctorContext) -> CheckResult:
    from shared.adapters.tokens import StaticToken, TokenProvider, default_credential

    settings = _settings(ctx)
    tokens: Any
    if settings.dataverse_static_token:
        tokens = StaticToken(settings.dataverse_static_token)
        detail = "DATAVERSE_STATIC_TOKEN (loopback emulator)"
    else:
        try:
            credential = ctx.credential or default_credential(settings.azure_client_id)
            tokens = TokenProvider(credential, settings.dataverse_scope)
            tokens.token()
        except Exception as exc:  # noqa: BLE001 - whatever azure-identity raises is the finding
            return problem(
                "dataverse-token",
                f"no token for {settings.dataverse_scope}: {exc.__class__.__name__}: {str(exc)[:300]}",
                "locally: `az login` with an account that is an application user in the org; in Azure: set "
                "AZURE_CLIENT_ID to the client id of the app's user-assigned managed identity",
            )
        detail = f"token acquired for {settings.dataverse_scope}"
    ctx.dataverse = DataverseClient(
        settings.dataverse_url,
        tokens,
        session=ctx.session,
        timeout=min(settings.dataverse_timeout_seconds, 15.0),
        max_retries=1,
        max_wait_seconds=5.0,
        signature=settings.interaction_action_signature,
    )
    return ok("dataverse-token", detail)


def check_whoami(ctx: DoctorContext) -> CheckResult:
    settings = _settings(ctx)
    try:
        who = _client(ctx).whoami()
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
class ActionParameter:
    name: str
    type: str
    nullable: bool = True

    def describe(self) -> str:
        return f"{self.name} ({self.type}{'' if self.nullable else ', required'})"


def parse_action_parameters(metadata_xml: bytes, action: str = ACTION) -> list[ActionParameter] | None:
    """The parameters of ``action`` in a CSDL ``$metadata`` document, or None when the action is not there."""
    found: list[ActionParameter] | None = None
    # The org's own CSDL, fetched over an authenticated TLS connection: not untrusted input.
    for _event, element in ElementTree.iterparse(io.BytesIO(metadata_xml), events=("end",)):  # noqa: S314
        if _local(element.tag) == "Action" and element.get("Name") == action:
            found = [
                ActionParameter(
                    str(child.get("Name")), str(child.get("Type")), child.get("Nullable", "true").lower() != "false"
                )
                for child in element
                if _local(child.tag) == "Parameter" and child.get("Name") != "bindingParameter"
            ]
            break
        if _local(element.tag) in ("EntityType", "ComplexType", "Action", "Function"):
            element.clear()  # the real $metadata is tens of MB
    return found


def app_parameters(signature: str) -> dict[str, str]:
    """What the app sends for ``signature`` (name → CSDL type), from the real request builder."""
    zero = "00000000-0000-0000-0000-000000000000"
    ref = ActivityRef(zero, "x", zero, zero, zero, "x", zero)
    sent: dict[str, str] = {}
    for interaction in (Interaction(ResponseType.SENT), Interaction(ResponseType.KEYWORD, "yes")):
        for name, value in interaction_body(ref, interaction, signature).items():
            if isinstance(value, dict):
                sent[name] = "mscrm." + str(value["@odata.type"]).removeprefix("Microsoft.Dynamics.CRM.")
            else:
                sent[name] = "Edm.String"
    return sent


def compare_signature(org: Iterable[ActionParameter], signature: str) -> list[str]:
    """Differences between the org's action and the app's call; empty when they match."""
    declared = {p.name: p for p in org}
    sent = app_parameters(signature)
    issues = []
    for name, sent_type in sent.items():
        param = declared.get(name)
        if param is None:
            issues.append(f"the app sends {name}, which the org's action does not declare")
        elif param.type != sent_type:
            issues.append(f"{name}: the org expects {param.type}, the app sends {sent_type}")
    issues.extend(
        f"the org requires {p.name}, which the app does not send"
        for p in declared.values()
        if not p.nullable and p.name not in sent
    )
    return issues


def check_interaction_action(ctx: DoctorContext) -> CheckResult:
    settings = _settings(ctx)
    name = "interaction-action"
    try:
        response = _client(ctx).request("GET", "$metadata", operation="metadata", headers={"Accept": "application/xml"})
        org = parse_action_parameters(response.content)
    except (TransientError, DataverseError) as exc:
        return problem(name, f"cannot read $metadata: {exc}", "check the Dataverse checks above")
    except ElementTree.ParseError as exc:
        return problem(name, f"$metadata is not CSDL XML: {exc}", "check DATAVERSE_URL")
    if org is None:
        return problem(
            name,
            f"the org has no action {ACTION}",
            "the Customer Insights - Journeys (outbound marketing) solution that defines it is not installed in "
            "this environment; check DATAVERSE_URL",
        )
    listing = "org parameters: " + ", ".join(p.describe() for p in org)
    current = settings.interaction_action_signature
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


def check_message_table(ctx: DoctorContext) -> CheckResult:
    name = "message-table"
    client = _client(ctx)
    table = ctx.message_table
    source = "--message-table"
    try:
        if not table:
            latest = latest_message_table(client)
            if latest is None:
                return problem(
                    name,
                    "no Custom Channel Activity row yet, so the message table is unknown",
                    "pass --message-table <logical name of the channel's message table> (e.g. cr123_smsmessage)",
                )
            table, source = latest[0], f"the most recent activity row (message {latest[1]})"
        definition = entity_definition(client, table)
    except (TransientError, DataverseError) as exc:
        return problem(name, f"cannot resolve the message table: {exc}", "pass --message-table <logical name>")
    if definition is None:
        return problem(
            name,
            f"message table '{table}' (from {source}) does not exist",
            "pass the logical name of the table the channel's messages live in (--message-table)",
        )
    ctx.message_table = table
    ctx.message_entity_set = str(definition["EntitySetName"])
    return ok(name, f"{table} (entity set {ctx.message_entity_set}, from {source})")


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


def _column_check(
    ctx: DoctorContext,
    name: str,
    setting: str,
    table: str,
    entity_set: str,
    column: str,
    wanted_types: frozenset[str],
    wanted: str,
) -> CheckResult:
    try:
        exists, attribute_type = column_status(_client(ctx), table, entity_set, column)
    except (TransientError, DataverseError) as exc:
        return problem(name, f"cannot check {table}.{column}: {exc}", "check the Dataverse checks above")
    if not exists:
        return problem(
            name,
            f"{setting} '{column}' is missing: table {table} has no column {column}",
            f"set {setting} to the logical name of the {wanted} column of {table} (Power Apps → Tables → {table} "
            "→ Columns → the column's logical name)",
        )
    if attribute_type and attribute_type not in wanted_types:
        return problem(
            name,
            f"{setting} '{column}' on {table} is a {attribute_type} column, not a {wanted} column",
            f"set {setting} to a {wanted} column of {table}",
        )
    return ok(name, f"{table}.{column} exists" + (f" ({attribute_type})" if attribute_type else ""))


def check_body_column(ctx: DoctorContext) -> CheckResult:
    settings = _settings(ctx)
    return _column_check(
        ctx,
        "message-body-column",
        "MESSAGE_BODY_COLUMN",
        str(ctx.message_table),
        str(ctx.message_entity_set),
        settings.message_body_column,
        TEXT_TYPES,
        "text",
    )


def check_contact_columns(ctx: DoctorContext) -> list[CheckResult]:
    settings = _settings(ctx)
    definition = None
    try:
        definition = entity_definition(_client(ctx), "contact")
    except (TransientError, DataverseError) as exc:
        return [problem("contact-columns", f"cannot read the contact table: {exc}", "check the checks above")]
    if definition is None:
        return [problem("contact-columns", "the org has no contact table", "check DATAVERSE_URL")]
    entity_set = str(definition["EntitySetName"])
    return [
        _column_check(
            ctx,
            "contact-phone-column",
            "CONTACT_PHONE_COLUMN",
            "contact",
            entity_set,
            settings.contact_phone_column,
            frozenset({"String"}),
            "text (phone)",
        ),
        _column_check(
            ctx,
            "compliance-column",
            "COMPLIANCE_COLUMN",
            "contact",
            entity_set,
            settings.compliance_column,
            frozenset({"Boolean"}),
            "Yes/No (Boolean)",
        ),
    ]


# ------------------------------------------------------------------------------------------------- state table
def check_state_table(ctx: DoctorContext, table_client_factory: Callable[[Settings], Any] | None = None) -> CheckResult:
    settings = _settings(ctx)
    name = "state-table"
    partition, row = "doctor-probe", uuid.uuid4().hex
    try:
        from azure.core.exceptions import ResourceExistsError

        table = (table_client_factory or _table_client)(settings)
        with contextlib.suppress(ResourceExistsError):
            table.create_table()
        table.upsert_entity({"PartitionKey": partition, "RowKey": row, "probe": "channel doctor"})
        entity = table.get_entity(partition_key=partition, row_key=row)
        table.delete_entity(partition_key=partition, row_key=row)
        if entity.get("probe") != "channel doctor":
            return problem(name, "the probe entity read back differently", "check the storage account")
    except Exception as exc:  # noqa: BLE001 - any storage failure is the finding
        return problem(
            name,
            f"cannot write/read table {settings.state_table_name}: {exc.__class__.__name__}: {str(exc)[:300]}",
            "check AzureWebJobsStorage (or __tableServiceUri/__accountName) and, identity-based, that the identity "
            "has 'Storage Table Data Contributor' on the account",
        )
    return ok(name, f"table {settings.state_table_name}: probe entity created, read and deleted")


def _table_client(settings: Settings) -> Any:
    from azure.data.tables import TableClient

    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, table_name=settings.state_table_name)
    from shared.adapters.tokens import default_credential

    endpoint = settings.storage_table_service_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    credential: Any = default_credential(settings.storage_client_id or settings.azure_client_id)
    return TableClient(endpoint=endpoint.rstrip("/"), table_name=settings.state_table_name, credential=credential)


# ------------------------------------------------------------------------------------------------- Service Bus
def check_queues(ctx: DoctorContext) -> list[CheckResult]:
    settings = _settings(ctx)
    factory = ctx.servicebus or SdkServiceBus(settings)
    queues = [
        ("ACTIVITY_QUEUE_NAME", settings.activity_queue_name),
        ("CALLBACK_QUEUE_NAME", settings.callback_queue_name),
        ("POISON_QUEUE_NAME", settings.poison_queue_name),
    ]
    admin: Any = None
    client: Any = None
    results = []
    try:
        for setting, queue in queues:
            name = f"servicebus:{queue}"
            try:
                if admin is None:
                    admin = factory.admin()
                props = admin.get_queue_runtime_properties(queue)
            except Exception as exc:  # noqa: BLE001 - classified below
                kind = _sb_error_kind(exc)
                if kind == "not_found":
                    results.append(_missing_queue(name, setting, queue))
                    continue
                if kind != "unauthorized":
                    results.append(_sb_unreachable(name, exc))
                    continue
                # Listen/Send-only rules cannot read runtime properties: fall back to a peek.
                try:
                    if client is None:
                        client = factory.client()
                    with client.get_queue_receiver(queue_name=queue, max_wait_time=5) as receiver:
                        receiver.peek_messages(max_message_count=1)
                except Exception as peek_exc:  # noqa: BLE001 - classified below
                    peek_kind = _sb_error_kind(peek_exc)
                    if peek_kind == "not_found":
                        results.append(_missing_queue(name, setting, queue))
                    elif peek_kind == "unauthorized":
                        results.append(
                            problem(
                                name,
                                f"not authorized to read queue {queue}",
                                "give the connection Listen + Send on the queue (identity-based: Azure Service Bus "
                                "Data Receiver + Data Sender roles)",
                            )
                        )
                    else:
                        results.append(_sb_unreachable(name, peek_exc))
                    continue
                results.append(ok(name, "reachable (message counts need a connection with Manage rights)"))
                continue
            detail = (
                f"active {props.active_message_count}, dead-lettered {props.dead_letter_message_count}, "
                f"scheduled {props.scheduled_message_count}"
            )
            waiting = props.active_message_count if queue == settings.poison_queue_name else 0
            if props.dead_letter_message_count or waiting:
                detail += " (inspect with `channel deadletter list`)"
            results.append(ok(name, detail))
    finally:
        for handle in (admin, client):
            if handle is not None:
                handle.close()
    return results


def _sb_error_kind(exc: Exception) -> str:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"ResourceNotFoundError", "MessagingEntityNotFoundError"}:
        return "not_found"
    if names & {"ClientAuthenticationError", "ServiceBusAuthorizationError", "ServiceBusAuthenticationError"}:
        return "unauthorized"
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return "unauthorized"
    if status == 404:
        return "not_found"
    return "other"


def _missing_queue(name: str, setting: str, queue: str) -> CheckResult:
    return problem(
        name,
        f"queue {queue} does not exist in the namespace",
        f"create it (infra/main.bicep creates the three queues) or correct {setting}",
    )


def _sb_unreachable(name: str, exc: Exception) -> CheckResult:
    return problem(
        name,
        f"Service Bus unreachable: {exc.__class__.__name__}: {str(exc)[:300]}",
        "check ServiceBusConnection (or ServiceBusConnection__fullyQualifiedNamespace) and outbound AMQP/HTTPS",
    )


# ------------------------------------------------------------------------------------------------- provider
def check_provider(ctx: DoctorContext) -> CheckResult:
    settings = _settings(ctx)
    if settings.channel_provider == "twilio":
        return check_twilio(settings, ctx.session)
    if settings.channel_provider == "loopback":
        return check_loopback(settings, ctx.session)
    return skipped(f"provider:{settings.channel_provider}", "no credential check for this provider")


def check_twilio(settings: Settings, session: requests.Session) -> CheckResult:
    name = "provider:twilio"
    sid = str(settings.twilio_account_sid)
    url = f"{settings.twilio_api_base_url}/2010-04-01/Accounts/{sid}.json"
    try:
        response = session.get(
            url, auth=(sid, str(settings.twilio_auth_token)), timeout=settings.provider_timeout_seconds
        )
    except requests.RequestException as exc:
        return problem(
            name, f"cannot reach {settings.twilio_api_base_url}: {exc.__class__.__name__}", "check TWILIO_API_BASE_URL"
        )
    if response.status_code in (401, 403):
        return problem(
            name,
            f"Twilio rejected TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN "
            f"(HTTP {response.status_code}{_twilio_code(response)})",
            "copy the Account SID and the current Auth Token from the Twilio console (a rotated token invalidates "
            "the old one; callbacks are signed with it too)",
        )
    if response.status_code == 404:
        return problem(name, f"account {sid} not found (HTTP 404)", "check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL")
    if response.status_code >= 400:
        return problem(name, f"Twilio answered HTTP {response.status_code}{_twilio_code(response)}", "retry later")
    try:
        status = str(response.json().get("status", "")) or "unknown"
    except ValueError:
        return problem(name, "Twilio answered a non-JSON body", "check TWILIO_API_BASE_URL")
    if status != "active":
        return problem(name, f"Twilio account {sid} is {status}", "reactivate the account in the Twilio console")
    return ok(name, f"account {sid} is active")


def _twilio_code(response: requests.Response) -> str:
    try:
        code = response.json().get("code")
    except ValueError:
        return ""
    return f", Twilio error {code}" if code else ""


def check_loopback(settings: Settings, session: requests.Session) -> CheckResult:
    """The gateway answers an (invalid) empty message with 400 when the key is right, 401 when it isn't."""
    name = "provider:loopback"
    try:
        response = session.post(
            f"{settings.loopback_provider_url}/messages",
            json={},
            headers={"Authorization": f"Bearer {settings.loopback_signing_key}"},
            timeout=settings.provider_timeout_seconds,
        )
    except requests.RequestException as exc:
        return problem(
            name,
            f"loopback gateway unreachable at {settings.loopback_provider_url}: {exc.__class__.__name__}",
            "start the gateway (python -m devtools.emulators.loopback_provider) or fix LOOPBACK_PROVIDER_URL",
        )
    if response.status_code == 401:
        return problem(name, "the loopback gateway rejected LOOPBACK_SIGNING_KEY", "use the gateway's key")
    return ok(name, f"gateway reachable at {settings.loopback_provider_url}, key accepted")


# ------------------------------------------------------------------------------------------------- running
def run_checks(ctx: DoctorContext) -> list[CheckResult]:
    results, settings = check_settings(ctx.environ)
    if settings is None:
        return [*results, skipped("others", "fix the settings first")]
    ctx.settings = settings

    token = check_token(ctx)
    results.append(token)
    dataverse_ok = not token.is_problem
    for check in (check_whoami, check_interaction_action, check_message_table):
        if not dataverse_ok:
            results.append(skipped(check.__name__.removeprefix("check_").replace("_", "-"), "Dataverse unavailable"))
            continue
        result = check(ctx)
        results.append(result)
        if check is check_whoami and result.is_problem:
            dataverse_ok = False
    if dataverse_ok and ctx.message_entity_set:
        results.append(check_body_column(ctx))
    else:
        results.append(skipped("message-body-column", "message table unknown"))
    if dataverse_ok:
        results.extend(check_contact_columns(ctx))
    else:
        results.append(skipped("contact-columns", "Dataverse unavailable"))
    results.append(check_state_table(ctx))
    results.extend(check_queues(ctx))
    results.append(check_provider(ctx))
    return results


def render(results: Iterable[CheckResult], out: TextIO) -> int:
    """Print one line per check (``ok`` / ``problem`` / ``skipped``), fixes indented; returns the exit code."""
    results = list(results)
    width = max((len(r.name) for r in results), default=10) + 2
    for result in results:
        out.write(f"{result.status:<8} {result.name:<{width}}{result.detail}\n")
        for line in result.lines:
            out.write(f"{'':<{9 + width}}{line}\n")
        if result.fix:
            out.write(f"{'':<{9 + width}}fix: {result.fix}\n")
    problems = sum(r.is_problem for r in results)
    out.write(f"\n{problems} problem(s) found\n" if problems else "\nall checks passed\n")
    return 1 if problems else 0


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    servicebus: ServiceBusFactory | None = None,
    credential: Any = None,
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
        "--settings", metavar="FILE", help="read settings from a local.settings.json (environment wins)"
    )
    args = parser.parse_args(argv)
    ctx = DoctorContext(
        environ=environ if environ is not None else read_environ(args.settings),
        message_table=args.message_table,
        servicebus=servicebus,
        credential=credential,
    )
    return render(run_checks(ctx), out or sys.stdout)


# ------------------------------------------------------------------------------------------------- helpers
def _settings(ctx: DoctorContext) -> Settings:
    assert ctx.settings is not None, "check_settings runs first"
    return ctx.settings


def _client(ctx: DoctorContext) -> DataverseClient:
    assert ctx.dataverse is not None, "check_token runs first"
    return ctx.dataverse


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
