"""The app's configuration contract: one validated pydantic model, loaded once per process.

Every field's ``validation_alias`` is the exact app-setting / environment variable name that partners
configure (see README "Settings"). A missing or invalid setting fails fast with one message that names it.
"""

from __future__ import annotations

import functools
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.models import CallbackProcessing
from shared.domain.phone import is_whatsapp
from shared.provider_settings import acs_errors, twilio_errors
from shared.secret_settings import UNRESOLVED_FIELD, drop_unresolved_references
from shared.settings_links import LinkSettings
from shared.settings_orgs import OrgSettings, org_errors
from shared.settings_policy import PolicySettings
from shared.settings_reconcile import ReconcileSettings
from shared.settings_whatsapp import WhatsAppSettings
from shared.urls import WEB_API_PATH, https_or_loopback
from shared.urls import is_loopback_host as is_loopback_host  # noqa: PLC0414 - re-exported for the CLI

ProviderName = Literal["twilio", "acs", "loopback", "whatsapp"]

_LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,259}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MIN_RTJ_SECRET_LENGTH = 24
RTJ_ENTRA_SETTINGS = ("RTJ_TOKEN_AUDIENCE", "RTJ_TOKEN_TENANT_ID", "RTJ_TOKEN_CLIENT_ID")

DEFAULT_OPT_OUT_KEYWORDS = ("stop", "stopall", "unsubscribe", "cancel", "end", "quit")


class ConfigurationError(RuntimeError):
    """Raised when the app settings are missing or invalid; the message names every offending setting."""


class Settings(BaseSettings, LinkSettings, WhatsAppSettings, PolicySettings, ReconcileSettings, OrgSettings):
    """All app settings. Field names are Pythonic; aliases are the public setting names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=True)

    # --- Dataverse -------------------------------------------------------------------------------
    dataverse_url: str = Field(default="", validation_alias="DATAVERSE_URL")  # required unless MULTI_ORG=true
    azure_client_id: str | None = Field(default=None, validation_alias="AZURE_CLIENT_ID")
    dataverse_static_token: str | None = Field(default=None, validation_alias="DATAVERSE_STATIC_TOKEN")
    interaction_action_signature: Literal["customerjourney", "campaign"] = Field(
        default="customerjourney", validation_alias="INTERACTION_ACTION_SIGNATURE"
    )
    dataverse_timeout_seconds: float = Field(default=20.0, gt=0, le=120, validation_alias="DATAVERSE_TIMEOUT_SECONDS")
    dataverse_max_retries: int = Field(default=4, ge=0, le=10, validation_alias="DATAVERSE_MAX_RETRIES")

    # --- Service Bus -----------------------------------------------------------------------------
    service_bus_connection: str | None = Field(default=None, validation_alias="ServiceBusConnection")
    service_bus_namespace: str | None = Field(
        default=None, validation_alias="ServiceBusConnection__fullyQualifiedNamespace"
    )
    service_bus_client_id: str | None = Field(default=None, validation_alias="ServiceBusConnection__clientId")
    activity_queue_name: str = Field(validation_alias="ACTIVITY_QUEUE_NAME")
    callback_queue_name: str = Field(default="callbacks", validation_alias="CALLBACK_QUEUE_NAME")
    poison_queue_name: str = Field(default="activities-poison", validation_alias="POISON_QUEUE_NAME")
    send_retry_max_attempts: int = Field(default=8, ge=1, le=50, validation_alias="SEND_RETRY_MAX_ATTEMPTS")
    send_retry_base_seconds: float = Field(default=30.0, ge=0, le=3600, validation_alias="SEND_RETRY_BASE_SECONDS")

    # --- State (Azure Table Storage in the host storage account) ---------------------------------
    storage_connection: str | None = Field(default=None, validation_alias="AzureWebJobsStorage")
    storage_table_service_uri: str | None = Field(default=None, validation_alias="AzureWebJobsStorage__tableServiceUri")
    storage_account_name: str | None = Field(default=None, validation_alias="AzureWebJobsStorage__accountName")
    storage_client_id: str | None = Field(default=None, validation_alias="AzureWebJobsStorage__clientId")
    state_table_name: str = Field(default="channelstate", validation_alias="STATE_TABLE_NAME")

    # --- Channel behaviour -----------------------------------------------------------------------
    channel_provider: ProviderName = Field(validation_alias="CHANNEL_PROVIDER")
    callback_base_url: str = Field(validation_alias="CALLBACK_BASE_URL")
    message_body_column: str = Field(validation_alias="MESSAGE_BODY_COLUMN")
    contact_phone_column: str = Field(default="mobilephone", validation_alias="CONTACT_PHONE_COLUMN")
    compliance_column: str = Field(default="donotphone", validation_alias="COMPLIANCE_COLUMN")
    default_country_code: str | None = Field(default=None, validation_alias="DEFAULT_COUNTRY_CODE")
    reply_window_days: float = Field(default=7.0, gt=0, le=365, validation_alias="REPLY_WINDOW_DAYS")
    opt_out_keywords: str = Field(default=",".join(DEFAULT_OPT_OUT_KEYWORDS), validation_alias="OPT_OUT_KEYWORDS")
    send_lease_seconds: float = Field(default=120.0, ge=5, le=3600, validation_alias="SEND_LEASE_SECONDS")

    # --- Twilio ----------------------------------------------------------------------------------
    twilio_account_sid: str | None = Field(default=None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN", repr=False)
    twilio_from: str | None = Field(default=None, validation_alias="TWILIO_FROM")
    twilio_messaging_service_sid: str | None = Field(default=None, validation_alias="TWILIO_MESSAGING_SERVICE_SID")
    twilio_api_base_url: str = Field(default="https://api.twilio.com", validation_alias="TWILIO_API_BASE_URL")

    # --- Loopback provider (local runs and tests) ------------------------------------------------
    loopback_provider_url: str | None = Field(default=None, validation_alias="LOOPBACK_PROVIDER_URL")
    loopback_signing_key: str | None = Field(default=None, validation_alias="LOOPBACK_SIGNING_KEY", repr=False)

    # --- Azure Communication Services ------------------------------------------------------------
    acs_endpoint: str | None = Field(default=None, validation_alias="ACS_ENDPOINT")
    acs_from: str | None = Field(default=None, validation_alias="ACS_FROM")
    acs_access_key: str | None = Field(default=None, validation_alias="ACS_ACCESS_KEY", repr=False)
    acs_eventgrid_secret: str | None = Field(default=None, validation_alias="ACS_EVENTGRID_SECRET", repr=False)

    # --- Real-time journeys (successor contract) ----------------------------------------------------
    rtj_auth_mode: Literal["entra", "secret"] = Field(default="entra", validation_alias="RTJ_AUTH_MODE")
    rtj_outbound_secret: str | None = Field(default=None, validation_alias="RTJ_OUTBOUND_SECRET", repr=False)
    rtj_token_audience: str | None = Field(default=None, validation_alias="RTJ_TOKEN_AUDIENCE")
    rtj_token_tenant_id: str | None = Field(default=None, validation_alias="RTJ_TOKEN_TENANT_ID")
    rtj_token_client_id: str | None = Field(default=None, validation_alias="RTJ_TOKEN_CLIENT_ID")
    rtj_token_authority: str = Field(
        default="https://login.microsoftonline.com", validation_alias="RTJ_TOKEN_AUTHORITY"
    )

    # Secret settings that still held an unresolved ``@Microsoft.KeyVault(...)`` reference (treated as unset; the
    # endpoints that need them answer 503). Filled by the before-validator below, never from the environment.
    unresolved_secrets: tuple[str, ...] = Field(default=(), validation_alias=UNRESOLVED_FIELD, exclude=True)

    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=60, validation_alias="PROVIDER_TIMEOUT_SECONDS")

    # --- Throughput and pacing ----------------------------------------------------------------------
    send_concurrency: int = Field(default=8, ge=1, le=64, validation_alias="SEND_CONCURRENCY")
    provider_max_per_second: float = Field(default=0.0, ge=0, le=10_000, validation_alias="PROVIDER_MAX_PER_SECOND")
    callback_processing: CallbackProcessing = Field(default="queued", validation_alias="CALLBACK_PROCESSING")
    dataverse_max_concurrency: int = Field(default=16, ge=1, le=52, validation_alias="DATAVERSE_MAX_CONCURRENCY")
    dataverse_request_budget: int = Field(default=5400, ge=0, le=6000, validation_alias="DATAVERSE_REQUEST_BUDGET")
    dataverse_budget_window_seconds: float = Field(
        default=300.0, gt=0, le=3600, validation_alias="DATAVERSE_BUDGET_WINDOW_SECONDS"
    )
    dataverse_batch_size: int = Field(default=50, ge=1, le=1000, validation_alias="DATAVERSE_BATCH_SIZE")

    # ---------------------------------------------------------------------------------------------
    @field_validator(
        "dataverse_static_token",
        "azure_client_id",
        "service_bus_connection",
        "service_bus_namespace",
        "service_bus_client_id",
        "storage_connection",
        "storage_table_service_uri",
        "storage_account_name",
        "storage_client_id",
        "default_country_code",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_from",
        "twilio_messaging_service_sid",
        "loopback_provider_url",
        "loopback_signing_key",
        "acs_endpoint",
        "acs_from",
        "acs_access_key",
        "acs_eventgrid_secret",
        "rtj_outbound_secret",
        "rtj_token_audience",
        "rtj_token_tenant_id",
        "rtj_token_client_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _unresolved_key_vault_references(cls, data: object) -> object:
        """App Service leaves ``@Microsoft.KeyVault(...)`` in a setting it could not resolve: never use it."""
        return drop_unresolved_references(data) if isinstance(data, dict) else data

    @field_validator("rtj_auth_mode", mode="before")
    @classmethod
    def _auth_mode(cls, value: object) -> object:
        """Blank means the default (entra); case and spaces are forgiven. Anything else fails at start-up."""
        if isinstance(value, str):
            return value.strip().lower() or "entra"
        return value

    @field_validator("rtj_token_tenant_id", "rtj_token_client_id")
    @classmethod
    def _check_guid(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.match(value):
            raise ValueError("must be a GUID (the directory / application (client) id from Entra ID)")
        return None if value is None else value.lower()

    @field_validator("rtj_token_authority")
    @classmethod
    def _check_authority(cls, value: str) -> str:
        return https_or_loopback(value or "https://login.microsoftonline.com", "RTJ_TOKEN_AUTHORITY")

    @field_validator("dataverse_url")
    @classmethod
    def _check_dataverse_url(cls, value: str) -> str:
        if not value.strip():
            return ""  # required unless MULTI_ORG=true (checked with the other combinations)
        value = https_or_loopback(value, "DATAVERSE_URL")
        if urlsplit(value).path not in ("", "/"):
            raise ValueError(
                "DATAVERSE_URL must be the environment URL only (https://<org>.crm.dynamics.com), "
                f"without {WEB_API_PATH}"
            )
        return value

    @field_validator("callback_base_url")
    @classmethod
    def _check_callback_base(cls, value: str) -> str:
        return https_or_loopback(value, "CALLBACK_BASE_URL")

    @field_validator("twilio_api_base_url", "loopback_provider_url")
    @classmethod
    def _check_provider_urls(cls, value: str | None) -> str | None:
        return None if value is None else https_or_loopback(value, "provider endpoint URL")

    @field_validator("acs_endpoint")
    @classmethod
    def _check_acs_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = https_or_loopback(value, "ACS_ENDPOINT")
        if urlsplit(value).path not in ("", "/"):
            raise ValueError("ACS_ENDPOINT must be the resource URL only (https://<resource>.communication.azure.com)")
        return value

    @field_validator("message_body_column", "contact_phone_column", "compliance_column")
    @classmethod
    def _check_logical_name(cls, value: str) -> str:
        value = value.strip()
        if not _LOGICAL_NAME.match(value):
            raise ValueError(f"'{value}' is not a Dataverse column logical name (lower case, e.g. cr123_body)")
        return value

    @field_validator("state_table_name")
    @classmethod
    def _check_table(cls, value: str) -> str:
        if not _TABLE_NAME.match(value):
            raise ValueError("must be 3-63 letters or digits, starting with a letter (Azure Table naming rules)")
        return value

    @field_validator("activity_queue_name", "callback_queue_name", "poison_queue_name")
    @classmethod
    def _check_queue(cls, value: str) -> str:
        value = value.strip()
        if not _QUEUE_NAME.match(value):
            raise ValueError("is not a valid Service Bus queue name")
        return value

    @field_validator("default_country_code")
    @classmethod
    def _check_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.lstrip("+")
        if not digits.isdigit() or not 1 <= len(digits) <= 3:
            raise ValueError("must be a calling code such as 1, 44 or 353")
        return digits

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        errors: list[str] = []
        errors.extend(org_errors(self))
        if (
            self.dataverse_static_token
            and self.dataverse_url
            and not is_loopback_host(urlsplit(self.dataverse_url).hostname)
        ):
            errors.append("DATAVERSE_STATIC_TOKEN: only allowed with a loopback DATAVERSE_URL (local emulators)")
        service_bus = self.service_bus_connection or self.service_bus_namespace
        if not (service_bus or self.is_unresolved("ServiceBusConnection")):
            errors.append(
                "ServiceBusConnection: set a connection string, or "
                "ServiceBusConnection__fullyQualifiedNamespace for an identity-based connection"
            )
        if self.is_unresolved("AzureWebJobsStorage") and not (
            self.storage_table_service_uri or self.storage_account_name
        ):
            errors.append(
                "AzureWebJobsStorage: holds an unresolved Key Vault reference (the Functions host cannot start "
                "without it either): grant the app's identity Key Vault Secrets User, or use an identity-based "
                "connection (AzureWebJobsStorage__accountName)"
            )
        elif not (self.storage_connection or self.storage_table_service_uri or self.storage_account_name):
            errors.append(
                "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__tableServiceUri / "
                "AzureWebJobsStorage__accountName for an identity-based connection"
            )
        if self.channel_provider == "twilio":
            errors.extend(twilio_errors(self))
        if self.channel_provider == "loopback":
            if not self.loopback_provider_url:
                errors.append("LOOPBACK_PROVIDER_URL: required when CHANNEL_PROVIDER=loopback")
            if not (self.loopback_signing_key or self.is_unresolved("LOOPBACK_SIGNING_KEY")):
                errors.append("LOOPBACK_SIGNING_KEY: required when CHANNEL_PROVIDER=loopback")
        if self.channel_provider == "acs":
            errors.extend(acs_errors(self))
        if self.rtj_outbound_secret is not None and len(self.rtj_outbound_secret) < MIN_RTJ_SECRET_LENGTH:
            errors.append(
                f"RTJ_OUTBOUND_SECRET: must be at least {MIN_RTJ_SECRET_LENGTH} characters (a generated random value)"
            )
        if not self.opt_out_word_set:
            errors.append("OPT_OUT_KEYWORDS: must list at least one keyword")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # --- derived ---------------------------------------------------------------------------------
    def is_unresolved(self, setting: str) -> bool:
        """True when ``setting`` (a public name, e.g. TWILIO_AUTH_TOKEN) held an unresolved Key Vault reference."""
        return setting in self.unresolved_secrets

    @property
    def rtj_auth_missing(self) -> list[str]:
        """The settings the chosen RTJ_AUTH_MODE still needs (the endpoint answers 503 naming them)."""
        if self.rtj_auth_mode == "secret":
            return [] if self.rtj_outbound_secret else ["RTJ_OUTBOUND_SECRET"]
        values = (self.rtj_token_audience, self.rtj_token_tenant_id, self.rtj_token_client_id)
        return [name for name, value in zip(RTJ_ENTRA_SETTINGS, values, strict=True) if not value]

    @property
    def dataverse_api_base(self) -> str:
        return f"{self.dataverse_url}{WEB_API_PATH}"

    @property
    def dataverse_scope(self) -> str:
        return f"{self.dataverse_url}/.default"

    @property
    def opt_out_word_set(self) -> frozenset[str]:
        return frozenset(w.strip().lower() for w in self.opt_out_keywords.split(",") if w.strip())

    def callback_url(self, provider: str) -> str:
        return f"{self.callback_base_url}/api/callbacks/{provider}"

    @property
    def is_whatsapp(self) -> bool:
        """Every send is a WhatsApp message: Meta's Cloud API, or Twilio with a ``whatsapp:`` sender."""
        if self.channel_provider == "whatsapp":
            return True
        return self.channel_provider == "twilio" and is_whatsapp(self.twilio_from)


def validation_messages(exc: ValidationError) -> list[str]:
    """One ``SETTING: problem`` line per error, named by the public setting name."""
    lines = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else ""
        field = Settings.model_fields.get(name)
        alias = field.validation_alias if field is not None else None
        setting = alias if isinstance(alias, str) else name
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            message = "required setting is missing"
        lines.append(f"{setting}: {message}" if setting else message)
    return lines


def _format_validation_error(exc: ValidationError) -> str:
    return "Invalid app settings: " + "; ".join(validation_messages(exc))


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build and validate settings from ``environ`` (default: the process environment)."""
    try:
        if environ is None:
            return Settings()  # type: ignore[call-arg]
        return Settings.model_validate(environ)
    except ValidationError as exc:
        raise ConfigurationError(_format_validation_error(exc)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return load_settings()
