"""How the operator commands reach ONE registered org (issue #15): its Dataverse token and its Key Vault secrets.

Two seams, each a plain function a caller (and a test) can replace:

- :func:`org_dataverse_tokens` — the token for the org's environment. A loopback emulator URL with
  ``DATAVERSE_STATIC_TOKEN`` gets that fixed token (:func:`shared.adapters.tokens.dataverse_tokens`, which refuses it
  for any other host); every other org gets a token in the customer's tenant from :func:`per_tenant_tokens`.
- :func:`per_tenant_tokens` and :func:`key_vault_reader` — the HOOKS to the per-tenant token source
  (``shared/adapters/org_tokens.py``) and the Key Vault reader (``shared/adapters/keyvault.py``). They load those
  modules by the interface the multi-org design fixes; while a module is not part of the build they raise
  :class:`OrgAccessUnavailable`, which the commands report as a failing check (never a made-up result).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.adapters.tokens import TokenCredentialLike, dataverse_tokens
from shared.orgs.model import OrgRecord
from shared.settings import Settings, is_loopback_host


class Tokens(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


class OrgAccessUnavailable(RuntimeError):
    """This build cannot reach the org's tenant or vault (the module that would is missing); says which."""


OrgTokenSource = Callable[[Settings, OrgRecord], Tokens]
SecretReader = Callable[[str], str]

ORG_TOKENS_MODULE = "shared.adapters.org_tokens"
KEY_VAULT_MODULE = "shared.adapters.keyvault"


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
    """HOOK: a token for ``<org>/.default`` in the org's tenant, as the ISV app (ORG_APP_CLIENT_ID) gets it.

    ``shared.adapters.org_tokens.org_tokens(settings, credential=...).tokens_for(environment_url, tenant_id)``.
    """
    if not settings.org_app_client_id:
        raise OrgAccessUnavailable(
            f"org {record.org_id} is not a loopback emulator, so its token comes from the multi-tenant app "
            "registration: set ORG_APP_CLIENT_ID (see docs/multi-org.md)"
        )
    module = _load(ORG_TOKENS_MODULE, "per-tenant Dataverse tokens")
    source: Any = module.org_tokens(settings, credential=credential)
    tokens: Tokens = source.tokens_for(record.environment_url, record.tenant_id)
    return tokens


def key_vault_reader(settings: Settings, *, credential: TokenCredentialLike | None = None) -> SecretReader:
    """HOOK: reads a secret of ``KEY_VAULT_URI`` by name (``KeyVaultSecrets(vault_uri, credential, session).get``)."""
    if not settings.key_vault_uri:
        raise OrgAccessUnavailable(
            "KEY_VAULT_URI is not set: an org that names Key Vault secrets needs the vault that holds them "
            "(https://<vault>.vault.azure.net)"
        )
    module = _load(KEY_VAULT_MODULE, "Key Vault secrets")
    import requests

    if credential is None:
        from shared.adapters.tokens import default_credential

        credential = default_credential(settings.azure_client_id)
    vault: Any = module.KeyVaultSecrets(settings.key_vault_uri, credential, requests.Session())
    reader: SecretReader = vault.get
    return reader


def _load(name: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise OrgAccessUnavailable(
            f"{what}: this build has no {name.replace('.', '/')}.py (issue #15); cannot check this part of the org"
        ) from None


def open_table(settings: Settings) -> Any:
    """The org registry table with the app's storage settings (identity-based: your az login / AZURE_CLIENT_ID)."""
    from shared.adapters.org_table import org_table

    credential = None
    if not settings.storage_connection:
        from shared.adapters.tokens import default_credential

        credential = default_credential(settings.storage_client_id or settings.azure_client_id)
    return org_table(settings, credential)
