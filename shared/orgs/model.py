"""One registered customer org (issue #15): its row in the org registry table, and its effective settings.

A row holds the org's Web API URL, its Entra tenant, and overrides of the channel settings that differ between
customers, each a property named exactly as the app setting (``MESSAGE_BODY_COLUMN``...). Secrets are never values
in the table: ``<SETTING>_SECRET_NAME`` names a Key Vault secret. A row is valid when the app settings with its
overrides applied pass the same :class:`shared.settings.Settings` rules; errors name the org and the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from shared.settings import Settings, validation_messages
from shared.urls import WEB_API_PATH, https_or_loopback

# The settings an org may override (table property = app setting name). Everything else is the deployment's.
ORG_SETTINGS: tuple[str, ...] = (
    "MESSAGE_BODY_COLUMN",
    "CONTACT_PHONE_COLUMN",
    "COMPLIANCE_COLUMN",
    "CONTACT_TIMEZONE_COLUMN",
    "DEFAULT_COUNTRY_CODE",
    "OPT_OUT_KEYWORDS",
    "QUIET_HOURS",
    "QUIET_HOURS_TIMEZONE",
    "MESSAGE_TEMPLATE_COLUMN",
    "MESSAGE_TEMPLATE_LANGUAGE_COLUMN",
    "MESSAGE_TEMPLATE_VARIABLES_COLUMN",
    "INTERACTION_ACTION_SIGNATURE",
    "DATAVERSE_REQUEST_BUDGET",
    "DATAVERSE_MAX_CONCURRENCY",
    "PROVIDER_MAX_PER_SECOND",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_FROM",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",  # a customer account in another Twilio region (e.g. https://api.dublin.ie1.twilio.com)
    "ACS_ENDPOINT",
    "ACS_FROM",
    "WHATSAPP_PHONE_NUMBER_ID",
    "RTJ_AUTH_MODE",
    "RTJ_TOKEN_AUDIENCE",
    "RTJ_TOKEN_TENANT_ID",
    "RTJ_TOKEN_CLIENT_ID",
)
# Secrets an org may bring (its own provider account, its relay secret): the row names a Key Vault secret.
SECRET_SETTINGS: tuple[str, ...] = (
    "TWILIO_AUTH_TOKEN",
    "ACS_ACCESS_KEY",
    "ACS_EVENTGRID_SECRET",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_APP_SECRET",
    "RTJ_OUTBOUND_SECRET",
)
SECRET_SUFFIX = "_SECRET_NAME"  # noqa: S105 - a property-name suffix, not a secret
# An org that names any of these verifies its own callbacks: its callback URLs carry ?org=<id>.
_PROVIDER_SECRETS = frozenset(SECRET_SETTINGS) - {"RTJ_OUTBOUND_SECRET"}
# Overrides that only make sense with the org's own secret (an account id with the ISV's token would never work).
_NEEDS_SECRET = {"TWILIO_ACCOUNT_SID": "TWILIO_AUTH_TOKEN", "ACS_ENDPOINT": "ACS_ACCESS_KEY"}
# Settings of which exactly one is set (the sender): an org that sets one drops the deployment's other.
_ONE_OF = (("TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID"), ("TWILIO_MESSAGING_SERVICE_SID", "TWILIO_FROM"))
_CORE = ("WebApiUrl", "TenantId", "DisplayName", "Enabled", "UpdatedAt")

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")  # Key Vault object names
_WEB_API_PATH = re.compile(r"^/api/data/v9\.\d$")
_PLACEHOLDER = "validation-placeholder-0123456789abcdef"  # stands for a Key Vault secret while a row is checked


class OrgConfigError(ValueError):
    """An org row that cannot be used; the message names the org and every offending field."""


def org_id_of(value: str) -> str:
    """The canonical (lower-case) organization id; ``ValueError`` when it is not a GUID."""
    text = str(value).strip().strip("{}").lower()
    if not _GUID.match(text):
        raise ValueError(f"'{str(value)[:60]}' is not an organization id (a GUID such as the OrganizationId of WhoAmI)")
    return text


@dataclass(frozen=True)
class OrgRecord:
    org_id: str
    web_api_url: str  # https://<org>.crm.dynamics.com/api/data/v9.2
    tenant_id: str
    enabled: bool = True
    display_name: str = ""
    overrides: Mapping[str, str] = field(default_factory=dict)  # app setting name -> value
    secret_names: Mapping[str, str] = field(default_factory=dict)  # app setting name -> Key Vault secret name
    updated_at: str = ""
    unknown: tuple[str, ...] = ()  # properties the row holds that no org may set (reported by validation)
    etag: str | None = None

    @property
    def environment_url(self) -> str:
        """The environment root (token scope ``<root>/.default``; the client adds the Web API path)."""
        parts = urlsplit(self.web_api_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def own_provider_credentials(self) -> bool:
        return bool(_PROVIDER_SECRETS & set(self.secret_names))

    @property
    def version(self) -> tuple[str | None, str]:
        return self.etag, self.updated_at


def web_api_url(value: str) -> str:
    """``value`` (the Web API URL, or the environment root) as the Web API URL this app speaks."""
    url = https_or_loopback(value, "WebApiUrl")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path and not _WEB_API_PATH.match(path):
        raise ValueError("WebApiUrl must be https://<org>.crm.dynamics.com/api/data/v9.2 (or the environment root)")
    return f"{parts.scheme}://{parts.netloc}{WEB_API_PATH}"


def to_entity(record: OrgRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        "WebApiUrl": record.web_api_url,
        "TenantId": record.tenant_id,
        "DisplayName": record.display_name,
        "Enabled": record.enabled,
        "UpdatedAt": record.updated_at,
    }
    values.update(record.overrides)
    values.update({f"{name}{SECRET_SUFFIX}": secret for name, secret in record.secret_names.items()})
    return values


def from_entity(org_id: str, values: Mapping[str, Any], etag: str | None = None) -> OrgRecord:
    overrides: dict[str, str] = {}
    secrets: dict[str, str] = {}
    unknown: list[str] = []
    for name, value in values.items():
        if name in _CORE or value in (None, ""):
            continue
        if name.endswith(SECRET_SUFFIX) and name.removesuffix(SECRET_SUFFIX) in SECRET_SETTINGS:
            secrets[name.removesuffix(SECRET_SUFFIX)] = str(value)
        elif name in ORG_SETTINGS:
            overrides[name] = str(value)
        else:
            unknown.append(name)
    enabled = values.get("Enabled", True)
    return OrgRecord(
        org_id=org_id,
        web_api_url=str(values.get("WebApiUrl") or ""),
        tenant_id=str(values.get("TenantId") or ""),
        enabled=enabled if isinstance(enabled, bool) else str(enabled).strip().lower() == "true",
        display_name=str(values.get("DisplayName") or ""),
        overrides=overrides,
        secret_names=secrets,
        updated_at=str(values.get("UpdatedAt") or ""),
        unknown=tuple(sorted(unknown)),
        etag=etag,
    )


def _row_errors(record: OrgRecord) -> list[str]:
    errors = [
        f"{name}: not a setting an org can override (see ORG_SETTINGS in docs/multi-org.md)" for name in record.unknown
    ]
    try:
        web_api_url(record.web_api_url)
    except ValueError as exc:
        errors.append(
            f"WebApiUrl: {str(exc).removeprefix('WebApiUrl ')}" if record.web_api_url else "WebApiUrl: required"
        )
    if not _GUID.match(record.tenant_id.lower()):
        errors.append("TenantId: must be the customer's Entra tenant (directory) id, a GUID")
    for name, secret in record.secret_names.items():
        if not _SECRET_NAME.match(secret):
            errors.append(
                f"{name}{SECRET_SUFFIX}: '{secret[:40]}' is not a Key Vault secret name (1-127 letters, digits, -)"
            )
    for override, secret in _NEEDS_SECRET.items():
        if override in record.overrides and secret not in record.secret_names:
            errors.append(f"{override}: an org's own account needs its {secret}{SECRET_SUFFIX} as well")
    return errors


def org_settings(base: Settings, record: OrgRecord, secret: Callable[[str], str] | None = None) -> Settings:
    """The app settings with ``record``'s overrides applied, validated by the same rules as the app settings.

    ``secret`` reads a Key Vault secret by name (None: placeholders, to check a row without reading secrets).
    Raises :class:`OrgConfigError` naming the org and each offending field.
    """
    errors = _row_errors(record)
    if errors:
        raise OrgConfigError(f"org {record.org_id}: " + "; ".join(errors))
    data = base.model_dump()
    data["dataverse_url"] = record.environment_url
    for chosen, other in _ONE_OF:  # an org's sender replaces the deployment's, whichever form either takes
        if chosen in record.overrides and other not in record.overrides:
            data[_field_of(other)] = None
    by_alias = {_field_of(name): value for name, value in record.overrides.items()}
    data.update(by_alias)
    for name, secret_name in record.secret_names.items():
        data[_field_of(name)] = secret(secret_name) if secret is not None else _PLACEHOLDER
    unresolved = tuple(name for name in base.unresolved_secrets if name not in record.secret_names)
    try:
        return Settings.model_validate(data).model_copy(update={"unresolved_secrets": unresolved})
    except ValidationError as exc:
        raise OrgConfigError(f"org {record.org_id}: " + "; ".join(validation_messages(exc))) from None


def _field_of(setting: str) -> str:
    for name, info in Settings.model_fields.items():
        if info.validation_alias == setting:
            return name
    raise KeyError(setting)  # ORG_SETTINGS / SECRET_SETTINGS name only real settings (a unit test holds them to it)
