"""The app's configuration contract: one validated pydantic model, loaded once per process.

Every field's ``validation_alias`` is the exact app-setting / environment variable name that partners
configure (see README "Settings"). A missing or invalid setting fails fast with one message that names it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.models import CallbackProcessing
from shared.domain.phone import is_whatsapp, strip_channel_prefix
from shared.urls import WEB_API_PATH
from shared.urls import is_loopback_host as is_loopback_host  # noqa: PLC0414 - re-exported for the CLI

ProviderName = Literal["twilio", "acs", "loopback"]

_LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,259}$")
_TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TWILIO_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_URL_SAFE_SECRET = re.compile(r"^[A-Za-z0-9\-_.~]+$")
MIN_EVENTGRID_SECRET_LENGTH = 24

DEFAULT_OPT_OUT_KEYWORDS = ("stop", "stopall", "unsubscribe", "cancel", "end", "quit")


class ConfigurationError(RuntimeError):
    """Raised when the app settings are missing or invalid; the message names every offending setting."""


def _https_or_loopback(value: str, setting: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{setting} must be an absolute URL such as https://contoso.crm.dynamics.com")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{setting} must use https (plain http is only accepted for loopback emulators)")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must not contain a query string or fragment")
    return value


class Settings(BaseSettings):
    """All app settings. Field names are Pythonic; aliases are the public setting names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=True)

    # --- Dataverse -------------------------------------------------------------------------------
    dataverse_url: str = Field(validation_alias="DATAVERSE_URL")
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
    rtj_outbound_secret: str | None = Field(default=None, validation_alias="RTJ_OUTBOUND_SECRET", repr=False)

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
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("dataverse_url")
    @classmethod
    def _check_dataverse_url(cls, value: str) -> str:
        value = _https_or_loopback(value, "DATAVERSE_URL")
        if urlsplit(value).path not in ("", "/"):
            raise ValueError(
                "DATAVERSE_URL must be the environment URL only (https://<org>.crm.dynamics.com), "
                f"without {WEB_API_PATH}"
            )
        return value

    @field_validator("callback_base_url")
    @classmethod
    def _check_callback_base(cls, value: str) -> str:
        return _https_or_loopback(value, "CALLBACK_BASE_URL")

    @field_validator("twilio_api_base_url", "loopback_provider_url")
    @classmethod
    def _check_provider_urls(cls, value: str | None) -> str | None:
        return None if value is None else _https_or_loopback(value, "provider endpoint URL")

    @field_validator("acs_endpoint")
    @classmethod
    def _check_acs_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _https_or_loopback(value, "ACS_ENDPOINT")
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
        if self.dataverse_static_token and not is_loopback_host(urlsplit(self.dataverse_url).hostname):
            errors.append("DATAVERSE_STATIC_TOKEN: only allowed with a loopback DATAVERSE_URL (local emulators)")
        if not (self.service_bus_connection or self.service_bus_namespace):
            errors.append(
                "ServiceBusConnection: set a connection string, or "
                "ServiceBusConnection__fullyQualifiedNamespace for an identity-based connection"
            )
        if not (self.storage_connection or self.storage_table_service_uri or self.storage_account_name):
            errors.append(
                "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__tableServiceUri / "
                "AzureWebJobsStorage__accountName for an identity-based connection"
            )
        if self.channel_provider == "twilio":
            errors.extend(self._twilio_errors())
        if self.channel_provider == "loopback":
            if not self.loopback_provider_url:
                errors.append("LOOPBACK_PROVIDER_URL: required when CHANNEL_PROVIDER=loopback")
            if not self.loopback_signing_key:
                errors.append("LOOPBACK_SIGNING_KEY: required when CHANNEL_PROVIDER=loopback")
        if self.channel_provider == "acs":
            errors.extend(self._acs_errors())
        if self.rtj_outbound_secret is not None and len(self.rtj_outbound_secret) < 24:
            errors.append("RTJ_OUTBOUND_SECRET: must be at least 24 characters (a generated random value)")
        if not self.opt_out_word_set:
            errors.append("OPT_OUT_KEYWORDS: must list at least one keyword")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _twilio_errors(self) -> list[str]:
        errors: list[str] = []
        if not self.twilio_account_sid:
            errors.append("TWILIO_ACCOUNT_SID: required when CHANNEL_PROVIDER=twilio")
        elif not _TWILIO_ACCOUNT_SID.match(self.twilio_account_sid):
            errors.append("TWILIO_ACCOUNT_SID: must look like AC followed by 32 hex characters")
        if not self.twilio_auth_token:
            errors.append("TWILIO_AUTH_TOKEN: required when CHANNEL_PROVIDER=twilio")
        if bool(self.twilio_from) == bool(self.twilio_messaging_service_sid):
            errors.append("TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID: set exactly one of them")
        if self.twilio_messaging_service_sid and not _TWILIO_SERVICE_SID.match(self.twilio_messaging_service_sid):
            errors.append("TWILIO_MESSAGING_SERVICE_SID: must look like MG followed by 32 hex characters")
        if self.twilio_from:
            sender = self.twilio_from
            number = strip_channel_prefix(sender)
            if not (_E164.match(number) or (sender == number and _ALPHANUMERIC_SENDER.match(sender))):
                errors.append(
                    "TWILIO_FROM: must be an E.164 number (+14155550100), an alphanumeric sender "
                    "(max 11 characters) or whatsapp:+E164"
                )
        return errors

    def _acs_errors(self) -> list[str]:
        errors: list[str] = []
        if not self.acs_endpoint:
            errors.append(
                "ACS_ENDPOINT: required when CHANNEL_PROVIDER=acs (https://<resource>.communication.azure.com)"
            )
        if not self.acs_from:
            errors.append("ACS_FROM: required when CHANNEL_PROVIDER=acs")
        elif not (_E164.match(self.acs_from) or _ALPHANUMERIC_SENDER.match(self.acs_from)):
            errors.append(
                "ACS_FROM: must be an E.164 number (+18005550100) or an alphanumeric sender (max 11 characters)"
            )
        if self.acs_access_key:
            try:
                base64.b64decode(self.acs_access_key, validate=True)
            except (binascii.Error, ValueError):
                errors.append("ACS_ACCESS_KEY: must be the resource's base64 access key (or unset to use Entra ID)")
        secret = self.acs_eventgrid_secret
        if not secret:
            errors.append(
                "ACS_EVENTGRID_SECRET: required when CHANNEL_PROVIDER=acs (the ?secret= of the Event Grid subscription)"
            )
        elif len(secret) < MIN_EVENTGRID_SECRET_LENGTH or not _URL_SAFE_SECRET.match(secret):
            errors.append(
                f"ACS_EVENTGRID_SECRET: must be at least {MIN_EVENTGRID_SECRET_LENGTH} characters of "
                "A-Z a-z 0-9 - _ . ~ (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return errors

    # --- derived ---------------------------------------------------------------------------------
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
        return is_whatsapp(self.twilio_from)


def _format_validation_error(exc: ValidationError) -> str:
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
    return "Invalid app settings: " + "; ".join(lines)


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
