"""Per-org provider secrets read from Azure Key Vault (``KEY_VAULT_URI``) by name, cached with a TTL.

Key Vault REST "Get Secret": ``GET {vault}/secrets/{name}?api-version=7.5`` (the latest version), bearer token for
``https://vault.azure.net/.default``, answer ``{"value": ..., "id": ..., "attributes": ...}``, errors
``{"error": {"code", "message", "innererror"?}}``; a request without a valid token gets ``401`` with a
``WWW-Authenticate: Bearer authorization="…", resource="…"`` challenge.

- 401 (after one retry with a fresh token), 403, 404 and any other 4xx: :class:`SecretUnavailable`, naming the
  secret, the vault, Key Vault's error code and the fix;
- 429, 5xx, timeouts and connection errors: :class:`~shared.domain.errors.TransientError` (``Retry-After`` kept).
  A value read before is served on a transient failure after its TTL (a Key Vault outage does not stop sending);
  a 401/403/404 never serves a stale value (access was revoked or the secret removed).

Secret values are never logged, never put in an exception message and never cached beyond the TTL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.adapters.http import new_session
from shared.adapters.org_tokens import Tokens
from shared.adapters.tokens import StaticToken, TokenCredentialLike, TokenProvider, default_credential
from shared.domain.errors import ChannelError, TransientError
from shared.log import log_event
from shared.urls import is_loopback_host

API_VERSION = "7.5"
VAULT_SCOPE = "https://vault.azure.net/.default"
DEFAULT_TTL_SECONDS = 300.0
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_FIX_ROLE = "grant the app's managed identity (AZURE_CLIENT_ID) the 'Key Vault Secrets User' role on the vault"


class SecretUnavailable(ChannelError):
    """A secret that cannot be read (not a transient failure); the message names the secret and the fix."""

    def __init__(self, name: str, detail: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(detail)
        self.name = name
        self.detail = detail
        self.status = status
        self.code = code


class KeyVaultConfigError(ValueError):
    """``KEY_VAULT_URI`` or a secret name is not usable; the message names it and the rule."""


def check_secret_name(name: str) -> str:
    """``name`` if it is a Key Vault secret name (1-127 letters, digits, hyphens), else KeyVaultConfigError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeyVaultConfigError(
            f"{name!r} is not a Key Vault secret name: 1-127 characters, only letters, digits and hyphens"
        )
    return name


def check_vault_uri(vault_uri: str) -> str:
    """The vault root (``https://<vault>.vault.azure.net``), without a trailing slash; http only for loopback."""
    text = (vault_uri or "").strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise KeyVaultConfigError(
            f"KEY_VAULT_URI {vault_uri!r} must be the vault URI only, e.g. https://kv-contoso.vault.azure.net"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise KeyVaultConfigError(
            f"KEY_VAULT_URI {vault_uri!r} must use https: plain http is only accepted for a loopback emulator"
        )
    return text


class KeyVaultSecrets:
    """``get(name)``: the latest value of the secret ``name`` in the vault, cached ``ttl`` seconds."""

    def __init__(
        self,
        vault_uri: str,
        tokens: Tokens,
        session: requests.Session | None = None,
        ttl: float = DEFAULT_TTL_SECONDS,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault = check_vault_uri(vault_uri)
        self._tokens = tokens
        self._session = session or new_session(8)
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, float]] = {}  # lower-case name -> (value, expires at)

    @property
    def vault_uri(self) -> str:
        return self._vault

    def get(self, name: str) -> str:
        check_secret_name(name)
        key = name.lower()  # Key Vault names are case-insensitive
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        try:
            value = self._fetch(name)
        except TransientError as exc:
            if cached is None:
                raise
            log_event("keyvault_secret_stale", logging.WARNING, secret=name, vault=self._vault, reason=exc.detail)
            return cached[0]
        except SecretUnavailable:
            with self._lock:
                self._cache.pop(key, None)
            raise
        with self._lock:
            self._cache[key] = (value, self._clock() + self._ttl)
        return value

    def _fetch(self, name: str) -> str:
        url = f"{self._vault}/secrets/{name}"
        response = self._request(url, self._tokens.token())
        if response.status_code == 401:  # a token the vault no longer takes: one fresh token, then give up
            response = self._request(url, self._tokens.token(force_refresh=True))
        status = response.status_code
        if status == 200:
            value = _json(response).get("value")
            if not isinstance(value, str):
                raise self._unavailable(name, status, "", "the answer holds no string 'value'")
            return value
        code, message = _error_of(response)
        if status == 429 or status >= 500:
            retry_after = _retry_after(response)
            log_event("keyvault_secret_transient", logging.WARNING, secret=name, vault=self._vault, status=status)
            raise TransientError(
                f"Key Vault {self._vault} answered HTTP {status} {code} reading secret {name!r}", retry_after
            )
        if status == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            fix = (
                "the app's identity got no token the vault accepts: check that the vault is in the app's tenant "
                f"(challenge: {challenge or 'none'}) and {_FIX_ROLE}"
            )
        elif status == 403:
            fix = (
                "enable the secret (it is disabled)"
                if code == "SecretDisabled" or "disabled" in message.lower()
                else _FIX_ROLE
            )
        elif status == 404:
            fix = (
                f"create it (az keyvault secret set --vault-name <vault> --name {name} --value ...) or correct the "
                f"*_SECRET_NAME that names it; if it exists, {_FIX_ROLE}"
            )
        else:
            fix = "check the secret name and KEY_VAULT_URI"
        raise self._unavailable(name, status, code, f"{code}: {message}".strip(": ") + f"; fix: {fix}")

    def _request(self, url: str, token: str) -> requests.Response:
        try:
            return self._session.get(
                url,
                params={"api-version": API_VERSION},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            log_event("keyvault_secret_transient", logging.WARNING, vault=self._vault, error=type(exc).__name__)
            raise TransientError(f"Key Vault {self._vault} unreachable: {type(exc).__name__}") from None

    def _unavailable(self, name: str, status: int, code: str, detail: str) -> SecretUnavailable:
        log_event(
            "keyvault_secret_unavailable", logging.ERROR, secret=name, vault=self._vault, status=status, code=code
        )
        message = f"Key Vault secret {name!r} in {self._vault} cannot be read (HTTP {status}): {detail}"
        return SecretUnavailable(name, message, status=status, code=code)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_of(response: requests.Response) -> tuple[str, str]:
    error = _json(response).get("error")
    if not isinstance(error, dict):
        return "", ""
    inner = error.get("innererror")
    code = inner.get("code") if isinstance(inner, dict) and inner.get("code") else error.get("code")
    message = str(error.get("message") or "").split("\r\n", 1)[0].split("\n", 1)[0][:300]
    return str(code or ""), message


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def key_vault_secrets(
    vault_uri: str,
    *,
    managed_identity_client_id: str | None = None,
    static_token: str | None = None,
    credential: TokenCredentialLike | None = None,
    session: requests.Session | None = None,
    ttl: float = DEFAULT_TTL_SECONDS,
) -> KeyVaultSecrets:
    """The app's :class:`KeyVaultSecrets` for ``KEY_VAULT_URI``.

    Tokens for ``https://vault.azure.net/.default`` from ``credential`` when given, else ``DefaultAzureCredential``
    with ``managed_identity_client_id`` (``AZURE_CLIENT_ID``). ``static_token`` is for a loopback emulator only
    (refused with :class:`KeyVaultConfigError` for any other host).
    """
    root = check_vault_uri(vault_uri)
    static = (static_token or "").strip()
    tokens: Tokens
    if static:
        if not is_loopback_host(urlsplit(root).hostname):
            raise KeyVaultConfigError(
                f"a static token is only accepted with a loopback KEY_VAULT_URI (local emulator), not {root}"
            )
        tokens = StaticToken(static)
    else:
        tokens = TokenProvider(
            credential or default_credential((managed_identity_client_id or "").strip() or None), VAULT_SCOPE
        )
    return KeyVaultSecrets(root, tokens, session, ttl)
