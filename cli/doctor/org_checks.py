"""``channel doctor --org <id>``: the checks about one registered org (issue #15), before every usual check runs
against the org's effective settings: MULTI_ORG on, the org registered and enabled, its Key Vault secrets readable,
its row valid by the app settings' rules, and (after WhoAmI) the org answering with its own organization id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import AzureError

from cli.doctor.dataverse_checks import TokenSource
from cli.doctor.org_access import OrgAccessUnavailable, OrgTokenSource, SecretReader
from cli.doctor.results import CheckResult, ok, problem, skipped
from shared.adapters.dataverse import DataverseClient
from shared.domain.errors import DataverseError, TransientError
from shared.orgs.model import SECRET_SUFFIX, OrgConfigError, OrgRecord, org_id_of, org_settings
from shared.orgs.registry import OrgRegistry
from shared.settings import Settings

ORG_AUTH_FIX = (
    "the token comes from the multi-tenant app registration (ORG_APP_CLIENT_ID) in the org's tenant: check the "
    "org's TenantId, that the customer's admin consented to the app, and that ORG_APP_CLIENT_ID's federated "
    "credential is the app's managed identity (docs/multi-org-identity.md); loopback emulators: "
    "DATAVERSE_STATIC_TOKEN"
)
SecretReaderFactory = Callable[[Settings], SecretReader]


@dataclass(frozen=True)
class OrgTarget:
    """The org the Dataverse checks run against: its id, how its token is made, and the fix for a token problem."""

    org_id: str
    tokens: Callable[[], TokenSource]
    token_fix: str = ORG_AUTH_FIX


def check_multi_org(base: Settings) -> CheckResult:
    if base.multi_org:
        return ok("multi-org", f"MULTI_ORG=true, registry table {base.org_table_name}")
    return problem(
        "multi-org",
        "MULTI_ORG is off: the app serves DATAVERSE_URL only and never routes to a registered org",
        "set MULTI_ORG=true (with ORG_APP_CLIENT_ID; docs/multi-org.md)",
    )


def check_registered(registry: OrgRegistry, org_id: str) -> tuple[CheckResult, OrgRecord | None]:
    name = "org-registered"
    try:
        key = org_id_of(org_id)
    except ValueError as exc:
        return problem(name, str(exc), "pass the org's OrganizationId (channel org list)"), None
    try:
        record = registry.get(key)
    except AzureError as exc:
        return problem(
            name,
            f"cannot read the org registry: {exc.__class__.__name__}: {str(exc)[:300]}",
            "check AzureWebJobsStorage (identity-based: 'Storage Table Data Contributor' on the account)",
        ), None
    if record is None:
        return problem(
            name,
            f"org {key} is not registered: its activities go to the poison queue (reason unknown_organization)",
            f"channel org add {key} --url <its Web API URL> --tenant <its tenant id> (channel org list shows the "
            "registered ones)",
        ), None
    label = f" ({record.display_name})" if record.display_name else ""
    return ok(name, f"org {key}{label}: {record.web_api_url}, tenant {record.tenant_id}"), record


def check_enabled(record: OrgRecord) -> CheckResult:
    if record.enabled:
        return ok("org-enabled", "enabled")
    return problem(
        "org-enabled",
        "disabled: its activities go to the poison queue (reason unknown_organization)",
        f"channel org update {record.org_id} --enable",
    )


def check_secrets(
    base: Settings, record: OrgRecord, readers: SecretReaderFactory
) -> tuple[list[CheckResult], SecretReader | None]:
    """Each Key Vault secret the row names, read once by name (never printed); when all of them were read, a reader
    of those values for the org's effective settings."""
    if not record.secret_names:
        return [ok("org-secrets", "none of its own (the deployment's provider credentials are used)")], None
    try:
        reader = readers(base)
    except OrgAccessUnavailable as exc:
        return [problem("org-secrets", str(exc), "set KEY_VAULT_URI to the vault holding the org's secrets")], None
    results = []
    values: dict[str, str] = {}
    for setting, secret in sorted(record.secret_names.items()):
        name = f"org-secret:{setting}"
        try:
            value = reader(secret)
        except Exception as exc:  # noqa: BLE001 - whatever the vault answers is the finding
            results.append(
                problem(
                    name,
                    f"Key Vault secret '{secret}' ({setting}{SECRET_SUFFIX}) cannot be read: "
                    f"{exc.__class__.__name__}: {str(exc)[:300]}",
                    "create the secret in KEY_VAULT_URI, or give the app's identity 'Key Vault Secrets User' on the "
                    f"vault, or correct it: channel org update {record.org_id} --secret {setting}=<secret name>",
                )
            )
            continue
        if not value:
            results.append(problem(name, f"Key Vault secret '{secret}' is empty", f"set the value of {setting}"))
        else:
            values[secret] = value
            results.append(ok(name, f"Key Vault secret '{secret}' readable"))
    return results, (None if any(r.is_problem for r in results) else values.__getitem__)


def check_org_settings(
    base: Settings, record: OrgRecord, reader: SecretReader | None
) -> tuple[CheckResult, Settings | None]:
    """The app settings with the row's overrides (and secrets, when read) applied, by the app settings' rules."""
    try:
        effective = org_settings(base, record, secret=reader)
    except OrgConfigError as exc:
        return problem(
            "org-settings", str(exc), f"correct the named settings: channel org update {record.org_id} --set/--unset"
        ), None
    overrides = ", ".join(sorted([*record.overrides, *(f"{s}{SECRET_SUFFIX}" for s in record.secret_names)]))
    return ok("org-settings", f"row valid; overrides: {overrides or 'none'}"), effective


def check_org_id(client: DataverseClient, org_id: str) -> CheckResult:
    """WhoAmI's OrganizationId is the registered id (else the URL names another org, whose activities never match)."""
    try:
        found = str(client.whoami().get("OrganizationId", "")).lower()
    except (TransientError, DataverseError) as exc:
        return problem("org-id", f"WhoAmI failed: {exc}", "check the Dataverse checks above")
    if found == org_id:
        return ok("org-id", f"WhoAmI OrganizationId {found} is the registered org id")
    return problem(
        "org-id",
        f"the org at this URL answers WhoAmI with OrganizationId {found or '(none)'}, not {org_id}: the row's "
        "WebApiUrl names another org, so this org's activities would be sent to the wrong one",
        f"channel org update {org_id} --url <the URL of org {org_id}> (or register {found} separately)",
    )


def whoami_organization(
    effective: Settings, record: OrgRecord, tokens: OrgTokenSource
) -> tuple[str | None, str | None]:
    """``(OrganizationId, None)`` from the org's WhoAmI with its own token, or ``(None, why not)``."""
    try:
        client = DataverseClient(
            effective.dataverse_url, tokens(effective, record), timeout=15.0, max_retries=1, max_wait_seconds=5.0
        )
        return str(client.whoami().get("OrganizationId", "")).lower() or None, None
    except (TransientError, DataverseError) as exc:
        return None, f"WhoAmI at {record.web_api_url} failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - no token (azure-identity, the hooks) is the finding
        return None, f"no token for {record.environment_url}: {exc.__class__.__name__}: {str(exc)[:300]}"


ORG_SKIPPED = skipped("others", "the org cannot be checked further (see above)")
