"""WhatsApp settings (issue #17): template columns on the message table and Meta's WhatsApp Cloud API provider.

A mixin of :class:`shared.settings.Settings` (pydantic-settings reads inherited fields like its own); the aliases
are the public setting names.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.domain.whatsapp import TemplateColumns, parse_opt_out_payloads
from shared.urls import is_loopback_host

DEFAULT_GRAPH_API_BASE_URL = "https://graph.facebook.com/v21.0"  # pinned Graph API version
DEFAULT_OPT_OUT_PAYLOADS = "stop,unsubscribe"
MIN_APP_SECRET_LENGTH = 16
MIN_VERIFY_TOKEN_LENGTH = 16
_LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
_PHONE_NUMBER_ID = re.compile(r"^[0-9]{5,32}$")


class WhatsAppSettings(BaseModel):
    """Template columns (any provider) and the Cloud API provider (``CHANNEL_PROVIDER=whatsapp``)."""

    message_template_column: str | None = Field(default=None, validation_alias="MESSAGE_TEMPLATE_COLUMN")
    message_template_language_column: str | None = Field(
        default=None, validation_alias="MESSAGE_TEMPLATE_LANGUAGE_COLUMN"
    )
    message_template_variables_column: str | None = Field(
        default=None, validation_alias="MESSAGE_TEMPLATE_VARIABLES_COLUMN"
    )
    message_media_column: str | None = Field(default=None, validation_alias="MESSAGE_MEDIA_COLUMN")
    whatsapp_phone_number_id: str | None = Field(default=None, validation_alias="WHATSAPP_PHONE_NUMBER_ID")
    whatsapp_access_token: str | None = Field(default=None, validation_alias="WHATSAPP_ACCESS_TOKEN", repr=False)
    whatsapp_app_secret: str | None = Field(default=None, validation_alias="WHATSAPP_APP_SECRET", repr=False)
    whatsapp_verify_token: str | None = Field(default=None, validation_alias="WHATSAPP_VERIFY_TOKEN", repr=False)
    whatsapp_api_base_url: str = Field(default=DEFAULT_GRAPH_API_BASE_URL, validation_alias="WHATSAPP_API_BASE_URL")
    whatsapp_opt_out_payloads: str = Field(
        default=DEFAULT_OPT_OUT_PAYLOADS, validation_alias="WHATSAPP_OPT_OUT_PAYLOADS"
    )

    @field_validator(
        "message_template_column",
        "message_template_language_column",
        "message_template_variables_column",
        "message_media_column",
        "whatsapp_phone_number_id",
        "whatsapp_access_token",
        "whatsapp_app_secret",
        "whatsapp_verify_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset_whatsapp(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator(
        "message_template_column",
        "message_template_language_column",
        "message_template_variables_column",
        "message_media_column",
    )
    @classmethod
    def _column_name(cls, value: str | None) -> str | None:
        if value is not None and not _LOGICAL_NAME.match(value):
            raise ValueError(f"'{value}' is not a Dataverse column logical name (lower case, e.g. cr123_template)")
        return value

    @field_validator("whatsapp_api_base_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        value = (value or DEFAULT_GRAPH_API_BASE_URL).strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an absolute URL such as https://graph.facebook.com/v21.0")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("must use https (plain http is only accepted for loopback emulators)")
        return value

    @model_validator(mode="after")
    def _whatsapp_combinations(self) -> WhatsAppSettings:
        errors: list[str] = []
        if not self.message_template_column:
            others = ("MESSAGE_TEMPLATE_LANGUAGE_COLUMN", "MESSAGE_TEMPLATE_VARIABLES_COLUMN")
            set_without = [n for n, v in zip(others, self._template_extras(), strict=True) if v]
            errors.extend(f"{name}: needs MESSAGE_TEMPLATE_COLUMN" for name in set_without)
        if not parse_opt_out_payloads(self.whatsapp_opt_out_payloads):
            errors.append("WHATSAPP_OPT_OUT_PAYLOADS: must list at least one button payload")
        if getattr(self, "channel_provider", None) == "whatsapp":
            errors.extend(self._cloud_api_errors())
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _template_extras(self) -> tuple[str | None, str | None]:
        return self.message_template_language_column, self.message_template_variables_column

    def _cloud_api_errors(self) -> list[str]:
        unresolved = getattr(self, "is_unresolved", lambda _name: False)
        errors: list[str] = []
        if not self.whatsapp_phone_number_id:
            errors.append("WHATSAPP_PHONE_NUMBER_ID: required when CHANNEL_PROVIDER=whatsapp")
        elif not _PHONE_NUMBER_ID.match(self.whatsapp_phone_number_id):
            errors.append("WHATSAPP_PHONE_NUMBER_ID: must be the numeric phone number ID from WhatsApp Manager")
        if not (self.whatsapp_access_token or unresolved("WHATSAPP_ACCESS_TOKEN")):
            errors.append("WHATSAPP_ACCESS_TOKEN: required when CHANNEL_PROVIDER=whatsapp (a system user token)")
        for name, value, minimum in (
            ("WHATSAPP_APP_SECRET", self.whatsapp_app_secret, MIN_APP_SECRET_LENGTH),
            ("WHATSAPP_VERIFY_TOKEN", self.whatsapp_verify_token, MIN_VERIFY_TOKEN_LENGTH),
        ):
            if value is None and not unresolved(name):
                errors.append(f"{name}: required when CHANNEL_PROVIDER=whatsapp")
            elif value is not None and len(value) < minimum:
                errors.append(f"{name}: must be at least {minimum} characters")
        return errors

    # --- derived ---------------------------------------------------------------------------------
    @property
    def template_columns(self) -> TemplateColumns:
        return TemplateColumns(
            template=self.message_template_column,
            language=self.message_template_language_column,
            variables=self.message_template_variables_column,
            media=self.message_media_column,
        )

    @property
    def opt_out_payload_set(self) -> frozenset[str]:
        return parse_opt_out_payloads(self.whatsapp_opt_out_payloads)
