"""Dataverse tokens for many orgs in their customers' tenants, without a secret (``MULTI_ORG=true``).

The app's user-assigned managed identity (``AZURE_CLIENT_ID``) is the federated identity credential of the ISV's
multi-tenant app registration (``ORG_APP_CLIENT_ID``): the managed identity gets a token for the audience
``api://AzureADTokenExchange`` in the ISV's tenant, and that token is the client assertion with which the app
registration signs in to each customer's tenant (azure-identity ``ClientAssertionCredential``). Microsoft Learn:
"Configure an application to trust a managed identity" (workload identity federation).

- one ``ClientAssertionCredential`` per customer tenant, built once (thread-safe);
- one cached :class:`~shared.adapters.tokens.TokenProvider` per environment, scope ``<environment url>/.default``;
- one managed-identity assertion for all tenants, cached and refreshed ``REFRESH_MARGIN_SECONDS`` before it expires.

A static token (``DATAVERSE_STATIC_TOKEN``) is accepted for loopback org URLs (the Dataverse emulator) only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.adapters.tokens import StaticToken, TokenCredentialLike, TokenProvider, TokenSelectionError
from shared.domain.errors import TransientError
from shared.urls import is_loopback_host

# The audience of the managed identity's token that is the client assertion (not a secret: a well-known scope).
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_WEB_API_PATH = re.compile(r"^/api/data/v\d+\.\d+/?$", re.IGNORECASE)

CredentialFactory = Callable[[str], TokenCredentialLike]  # customer tenant id -> credential for that tenant


class Tokens(Protocol):
    """A token source for one org: :class:`TokenProvider` or :class:`StaticToken`."""

    def token(self, *, force_refresh: bool = False) -> str: ...


# Entra's answer -> what to fix (Microsoft Entra authentication error codes, AADSTS).
_FIXES = {
    "AADSTS700016": "the customer's admin has not consented to the app in this tenant: open {consent}",
    "AADSTS7000229": "the app has no service principal in this tenant: the customer's admin consents at {consent}",
    "AADSTS650052": "the app has no service principal in this tenant: the customer's admin consents at {consent}",
    "AADSTS90002": "no such tenant: correct the org's TenantId",
    "AADSTS500011": "this tenant has no Dataverse environment at that URL: check the org's WebApiUrl and TenantId",
    "AADSTS700211": "no federated credential on the app matches the managed identity's token: check the issuer, "
    "subject (the managed identity's object id) and audience of the app's federated credential",
    "AADSTS70021": "no federated credential on the app matches the managed identity's token: check the issuer, "
    "subject (the managed identity's object id) and audience of the app's federated credential",
    "AADSTS700236": "the app registration must live in the same tenant as the managed identity (the ISV's tenant)",
}
_AADSTS = re.compile(r"AADSTS\d+")


class OrgSignInError(TransientError):
    """No token for an org: Entra refused it or the managed identity is unavailable. The detail names the tenant,
    Entra's AADSTS code and the fix; transient, since the fix (consent, a federated credential) is made outside
    the app and the next attempt may succeed."""

    def __init__(self, detail: str, *, tenant_id: str, code: str) -> None:
        super().__init__(detail)
        self.tenant_id = tenant_id
        self.code = code


class OrgTokenProvider(TokenProvider):
    """A :class:`TokenProvider` whose sign-in failures are :class:`OrgSignInError` naming the tenant and the fix."""

    def __init__(
        self,
        credential: TokenCredentialLike,
        scope: str,
        *,
        tenant_id: str,
        app_client_id: str,
        authority: str = DEFAULT_AUTHORITY,
    ) -> None:
        super().__init__(credential, scope)
        self.tenant_id = tenant_id
        self._app = app_client_id
        self._authority = authority.rstrip("/")  # the consent page lives in the same cloud

    def token(self, *, force_refresh: bool = False) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return super().token(force_refresh=force_refresh)
        except ClientAuthenticationError as exc:
            text = str(exc)
            found = _AADSTS.search(text)
            code = found.group(0) if found else type(exc).__name__
            consent = f"{self._authority}/{self.tenant_id}/adminconsent?client_id={self._app or '<ORG_APP_CLIENT_ID>'}"
            fix = _FIXES.get(code, "see Entra's message").format(consent=consent)
            if type(exc).__name__ == "CredentialUnavailableError":
                fix = "the app's managed identity (AZURE_CLIENT_ID) is not available here"
            first_line = text.strip().splitlines()[0][:240] if text.strip() else type(exc).__name__
            detail = f"no Dataverse token for {self.scope} in tenant {self.tenant_id}: {first_line}; fix: {fix}"
            raise OrgSignInError(detail, tenant_id=self.tenant_id, code=code) from None


class ManagedIdentityAssertion:
    """The client assertion: the managed identity's token for ``api://AzureADTokenExchange``, cached.

    Called by ``ClientAssertionCredential`` each time it needs a new token for a tenant; every tenant shares the
    one cached assertion (it is issued by the ISV's tenant, whatever the customer's tenant).
    """

    def __init__(self, credential: TokenCredentialLike) -> None:
        self._provider = TokenProvider(credential, TOKEN_EXCHANGE_SCOPE)

    @property
    def acquisitions(self) -> int:
        return self._provider.acquisitions

    def __call__(self) -> str:
        return self._provider.token()


def environment_root(url: str) -> str:
    """The environment root of an org URL (``https://<org>.crm.dynamics.com``); a Web API URL is accepted.

    Refused with :class:`TokenSelectionError`: anything but http(s) with a host, another path than
    ``/api/data/v<major>.<minor>``, a query or fragment, and plain http to a non-loopback host.
    """
    text = url.strip()
    parts = urlsplit(text)
    path_ok = parts.path in ("", "/") or _WEB_API_PATH.match(parts.path) is not None
    if parts.scheme not in ("https", "http") or not parts.hostname or not path_ok or parts.query or parts.fragment:
        raise TokenSelectionError(
            f"org URL {text!r} must be the environment URL (https://contoso.crm.dynamics.com) or its Web API URL "
            "(https://contoso.crm.dynamics.com/api/data/v9.2), with no other path and no query"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise TokenSelectionError(
            f"org URL {text!r} must use https: a bearer token is only sent over plain http to a loopback emulator"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _tenant(tenant_id: str) -> str:
    tenant = tenant_id.strip().lower()
    if not _GUID.match(tenant):
        raise TokenSelectionError(f"tenant id {tenant_id!r} must be the customer's Entra tenant id (a GUID)")
    return tenant


class OrgTokens:
    """Token sources per org: ``tokens_for(environment_url, tenant_id)``, cached per environment and tenant."""

    def __init__(
        self,
        credential_factory: CredentialFactory | None,
        *,
        static_token: str | None = None,
        app_client_id: str | None = None,
        authority: str | None = None,
    ) -> None:
        self._factory = credential_factory
        self._authority = authority or DEFAULT_AUTHORITY
        self._app = (app_client_id or "").strip()
        self._static = (static_token or "").strip()
        self._lock = threading.Lock()
        self._credentials: dict[str, TokenCredentialLike] = {}
        self._tokens: dict[tuple[str, str], Tokens] = {}

    def tokens_for(self, environment_url: str, tenant_id: str) -> Tokens:
        """The cached token source for the org at ``environment_url`` in the Entra tenant ``tenant_id``."""
        root = environment_root(environment_url)
        tenant = _tenant(tenant_id)
        key = (tenant, root)
        with self._lock:
            found = self._tokens.get(key)
            if found is None:
                found = self._make(root, tenant)
                self._tokens[key] = found
            return found

    def credential_for(self, tenant_id: str) -> TokenCredentialLike:
        """The one credential of ``tenant_id`` (built on first use)."""
        tenant = _tenant(tenant_id)
        with self._lock:
            return self._credential(tenant)

    def _credential(self, tenant: str) -> TokenCredentialLike:
        credential = self._credentials.get(tenant)
        if credential is None:
            if self._factory is None:
                raise TokenSelectionError(
                    "ORG_APP_CLIENT_ID is required with MULTI_ORG=true: set it to the client id of the multi-tenant "
                    "app registration whose federated credential is the app's managed identity (AZURE_CLIENT_ID); "
                    "only loopback org URLs can do without it, with DATAVERSE_STATIC_TOKEN"
                )
            credential = self._factory(tenant)
            self._credentials[tenant] = credential
        return credential

    def _make(self, root: str, tenant: str) -> Tokens:
        loopback = is_loopback_host(urlsplit(root).hostname)
        if self._static:
            if not loopback:
                raise TokenSelectionError(
                    f"DATAVERSE_STATIC_TOKEN is only accepted for loopback org URLs (local emulators), not {root}; "
                    "remove it so the org is reached with ORG_APP_CLIENT_ID's federated credential"
                )
            return StaticToken(self._static)
        credential = self._credential(tenant)
        scope = f"{root}/.default"
        return OrgTokenProvider(credential, scope, tenant_id=tenant, app_client_id=self._app, authority=self._authority)


def managed_identity_credential(client_id: str | None) -> TokenCredentialLike:
    """azure-identity ``ManagedIdentityCredential`` for the user-assigned identity ``client_id`` (AZURE_CLIENT_ID)."""
    from azure.identity import ManagedIdentityCredential  # lazy: only multi-org deployments pay for it

    return ManagedIdentityCredential(client_id=client_id)


def federated_credential_factory(
    *,
    app_client_id: str,
    assertion: Callable[[], str],
    authority: str = DEFAULT_AUTHORITY,
    **credential_options: Any,
) -> CredentialFactory:
    """Builds ``ClientAssertionCredential(tenant_id, app_client_id, func=assertion, authority=authority)`` per tenant.

    ``credential_options`` go to azure-identity unchanged (e.g. ``connection_verify`` for a test CA).
    """
    client = app_client_id.strip()
    if not _GUID.match(client):
        raise TokenSelectionError(
            f"ORG_APP_CLIENT_ID {app_client_id!r} must be the application (client) id (a GUID) of the ISV's "
            "multi-tenant app registration"
        )
    authority_url = (authority or DEFAULT_AUTHORITY).strip().rstrip("/")
    if urlsplit(authority_url).scheme != "https":
        raise TokenSelectionError(f"ORG_TOKEN_AUTHORITY {authority!r} must be an https URL")

    def make(tenant_id: str) -> TokenCredentialLike:
        from azure.identity import ClientAssertionCredential  # lazy, as above

        credential: TokenCredentialLike = ClientAssertionCredential(  # type: ignore[assignment]
            tenant_id=tenant_id, client_id=client, func=assertion, authority=authority_url, **credential_options
        )
        return credential

    return make


def org_tokens(
    *,
    app_client_id: str | None,
    managed_identity_client_id: str | None,
    authority: str | None = DEFAULT_AUTHORITY,
    static_token: str | None = None,
    managed_identity: TokenCredentialLike | None = None,
    credential_factory: CredentialFactory | None = None,
    credential: TokenCredentialLike | None = None,
) -> OrgTokens:
    """The app's :class:`OrgTokens` from its settings.

    - ``app_client_id``: ``ORG_APP_CLIENT_ID`` (blank = unset: then only loopback orgs with a static token work,
      any other org is refused with a message naming the setting when its tokens are first asked for);
    - ``managed_identity_client_id``: ``AZURE_CLIENT_ID``, the user-assigned managed identity behind the assertion;
    - ``authority``: ``ORG_TOKEN_AUTHORITY`` (default ``https://login.microsoftonline.com``);
    - ``static_token``: ``DATAVERSE_STATIC_TOKEN`` (loopback org URLs only);
    - injected credentials (tests): ``managed_identity`` replaces the managed identity behind the assertion,
      ``credential_factory`` builds each tenant's credential, ``credential`` serves every tenant.
    """
    if credential is not None and credential_factory is None:
        shared = credential

        def credential_factory(_tenant: str) -> TokenCredentialLike:
            return shared

    if credential_factory is None and (app_client_id or "").strip():
        if managed_identity is None:
            managed_identity = managed_identity_credential((managed_identity_client_id or "").strip() or None)
        credential_factory = federated_credential_factory(
            app_client_id=app_client_id or "",
            assertion=ManagedIdentityAssertion(managed_identity),
            authority=authority or DEFAULT_AUTHORITY,
        )
    return OrgTokens(credential_factory, static_token=static_token, app_client_id=app_client_id, authority=authority)
