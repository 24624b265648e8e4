"""How the operator commands reach ONE registered org (issue #15): its Dataverse token and its Key Vault secrets.

Two seams, each a plain function a caller (and a test) can replace:

- :func:`org_dataverse_tokens` — the token for the org's environment. A loopback emulator URL with
  ``DATAVERSE_STATIC_TOKEN`` gets that fixed token (:func:`shared.adapters.tokens.dataverse_tokens`, which refuses it
  for any other host); every other org gets a token in the customer's tenant from :func:`per_tenant_tokens`.
- :func:`per_tenant_tokens` and :func:`key_vault_reader` — the per-tenant token source
  (``shared/adapters/org_tokens.py``) and the Key Vault reader (``shared/adapters/keyvault.py``), built as the app
  builds them. A setting they need that is missing raises :class:`OrgAccessUnavailable`, reported as a failing
  check naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.adapters.keyvault import key_vault_secrets
from shared.adapters.org_tokens import org_tokens
from shared.adapters.tokens import TokenCredentialLike, dataverse_tokens
from shared.orgs.model import OrgRecord
from shared.settings import Settings, is_loopback_host


class Tokens(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


class OrgAccessUnavailable(RuntimeError):
    """The org's tenant or vault cannot be reached with these settings; says which setting is missing."""


OrgTokenSource = Callable[[Settings, OrgRecord], Tokens]
SecretReader = Callable[[str], str]


def is_loopback_org(record: OrgRecord) -> bool:
    return is_loopback_host(urlsplit(record.web_api_url).hostname)


def org_dataverse_tokens(
    settings: Settings, record: OrgRecord, *, credential: TokenCredentialLike | None = None
) -> Tokens:
    """The Dataverse token source for ``record``'s environment (see the module docstring)."""
    if settings.dataverse_static_token and is_loopback_org(record):
        return dataverse_tokens(record.environment_url, static_token=settings.dataverse_static_token)
    return per_tenant_tokens(settings, record, credential=credential)


def per_tenant_tokens(
    settings: Settings, record: OrgRecord, *, credential: TokenCredentialLike | None = None
) -> Tokens:
    """A token for ``<org>/.default`` in the org's tenant, exactly as the app gets it: the ISV's app registration
    (ORG_APP_CLIENT_ID) signing in with the managed identity's assertion. Outside Azure (no managed identity) this
    fails with a message saying so: run ``channel doctor --org`` where the identity is, or with ``credential``."""
    if not settings.org_app_client_id and credential is None:
        raise OrgAccessUnavailable(
            f"org {record.org_id} is not a loopback emulator, so its token comes from the multi-tenant app "
            "registration: set ORG_APP_CLIENT_ID (see docs/multi-org.md)"
        )
    source = org_tokens(
        app_client_id=settings.org_app_client_id,
        managed_identity_client_id=settings.azure_client_id,
        authority=settings.org_token_authority,
        credential=credential,
    )
    return source.tokens_for(record.environment_url, record.tenant_id)


def key_vault_reader(settings: Settings, *, credential: TokenCredentialLike | None = None) -> SecretReader:
    """Reads a secret of ``KEY_VAULT_URI`` by name, as the app does (your az login / AZURE_CLIENT_ID)."""
    if not settings.key_vault_uri:
        raise OrgAccessUnavailable(
            "KEY_VAULT_URI is not set: an org that names Key Vault secrets needs the vault that holds them "
            "(https://<vault>.vault.azure.net)"
        )
    loopback = is_loopback_host(urlsplit(settings.key_vault_uri).hostname)
    vault = key_vault_secrets(
        settings.key_vault_uri,
        managed_identity_client_id=settings.azure_client_id,
        static_token=settings.dataverse_static_token if loopback else None,  # a loopback emulator only
        credential=credential,
    )
    return vault.get


def open_table(settings: Settings) -> Any:
    """The org registry table with the app's storage settings (identity-based: your az login / AZURE_CLIENT_ID)."""
    from shared.adapters.org_table import org_table

    credential = None
    if not settings.storage_connection:
        from shared.adapters.tokens import default_credential

        credential = default_credential(settings.storage_client_id or settings.azure_client_id)
    return org_table(settings, credential)
