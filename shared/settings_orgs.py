"""Settings of one deployment serving many Dataverse orgs (issue #15; a mixin of :class:`shared.settings.Settings`).

Off by default: with ``MULTI_ORG`` unset or false nothing here is read. See docs/multi-org.md.
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import BaseModel, Field, field_validator

from shared.urls import https_or_loopback

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class OrgSettings(BaseModel):
    multi_org: bool = Field(default=False, validation_alias="MULTI_ORG")
    org_table_name: str = Field(default="channelorgs", validation_alias="ORG_TABLE_NAME")
    # The ISV's multi-tenant app registration; its credential is a federated identity credential backed by the
    # app's user-assigned managed identity (AZURE_CLIENT_ID). Tokens for each customer's tenant are issued to it.
    org_app_client_id: str | None = Field(default=None, validation_alias="ORG_APP_CLIENT_ID")
    org_token_authority: str = Field(
        default="https://login.microsoftonline.com", validation_alias="ORG_TOKEN_AUTHORITY"
    )
    key_vault_uri: str | None = Field(default=None, validation_alias="KEY_VAULT_URI")
    org_cache_seconds: float = Field(default=60.0, ge=0, le=3600, validation_alias="ORG_CACHE_SECONDS")

    @field_validator("multi_org", mode="before")
    @classmethod
    def _org_blank_is_off(cls, value: object) -> object:
        return False if isinstance(value, str) and not value.strip() else value

    @field_validator("org_table_name")
    @classmethod
    def _check_org_table_name(cls, value: str) -> str:
        value = value.strip()
        if not _TABLE_NAME.match(value):
            raise ValueError("must be 3-63 letters or digits, starting with a letter (Azure Table naming rules)")
        return value

    @field_validator("org_app_client_id", "key_vault_uri", mode="before")
    @classmethod
    def _org_blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("org_app_client_id")
    @classmethod
    def _check_org_client_id(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.match(value):
            raise ValueError("must be a GUID (the application (client) id of the multi-tenant app registration)")
        return None if value is None else value.lower()

    @field_validator("org_token_authority")
    @classmethod
    def _check_org_authority(cls, value: str) -> str:
        return https_or_loopback(value or "https://login.microsoftonline.com", "ORG_TOKEN_AUTHORITY")

    @field_validator("key_vault_uri")
    @classmethod
    def _check_org_vault(cls, value: str | None) -> str | None:
        return None if value is None else https_or_loopback(value, "KEY_VAULT_URI")


class _Combined(Protocol):
    multi_org: bool
    dataverse_url: str
    dataverse_static_token: str | None
    org_app_client_id: str | None


def org_errors(settings: _Combined) -> list[str]:
    """What MULTI_ORG needs, or (off) the single org's DATAVERSE_URL."""
    if not settings.multi_org:
        return [] if settings.dataverse_url else ["DATAVERSE_URL: required setting is missing"]
    if settings.org_app_client_id or settings.dataverse_static_token:
        return []
    return [
        "ORG_APP_CLIENT_ID: required when MULTI_ORG=true (the client id of your multi-tenant app registration whose "
        "federated credential is the app's managed identity; see docs/multi-org.md)"
    ]
