"""Bearer tokens for Dataverse: one azure-identity credential per process, tokens cached and refreshed early.

:func:`dataverse_tokens` is the one place that decides how a caller (the app, ``channel doctor``,
``channel provision``) authenticates to Dataverse, with every safeguard in one function.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

from shared.settings import is_loopback_host


class _AccessToken(Protocol):
    token: str
    expires_on: int


class TokenCredentialLike(Protocol):
    def get_token(self, *scopes: str) -> _AccessToken: ...


REFRESH_MARGIN_SECONDS = 300


class TokenSelectionError(ValueError):
    """DATAVERSE_URL and the token settings do not fit together; the message names the setting and the fix."""


class TokenProvider:
    """Caches one token per scope; refreshes it ``REFRESH_MARGIN_SECONDS`` before it expires."""

    def __init__(self, credential: TokenCredentialLike, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = threading.Lock()
        self.acquisitions = 0

    @property
    def scope(self) -> str:
        return self._scope

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or self._token is None or time.time() >= self._expires_on - REFRESH_MARGIN_SECONDS:
                access = self._credential.get_token(self._scope)
                self._token = access.token
                self._expires_on = float(access.expires_on)
                self.acquisitions += 1
            return self._token


class StaticToken:
    """A fixed token for loopback emulators only (:func:`dataverse_tokens` refuses it for any other host)."""

    def __init__(self, value: str) -> None:
        self._value = value
        self.acquisitions = 0

    def token(self, *, force_refresh: bool = False) -> str:
        return self._value


def default_credential(client_id: str | None) -> TokenCredentialLike:
    """``DefaultAzureCredential`` honouring ``AZURE_CLIENT_ID`` (user-assigned managed identity in Azure)."""
    from azure.identity import DefaultAzureCredential  # lazy: only paths that need a token pay for it

    return DefaultAzureCredential(managed_identity_client_id=client_id)  # type: ignore[return-value]


def dataverse_tokens(
    url: str,
    *,
    static_token: str | None = None,
    client_id: str | None = None,
    credential: TokenCredentialLike | None = None,
) -> StaticToken | TokenProvider:
    """The token source for the Dataverse environment at ``url`` (``DATAVERSE_URL``).

    - ``static_token`` (``DATAVERSE_STATIC_TOKEN``, blank = unset): that fixed token, and only when ``url`` is a
      loopback emulator; it wins over a credential.
    - otherwise a cached :class:`TokenProvider` for ``<url>/.default`` on ``credential`` when one is given (tests, a
      caller's shared credential), else ``DefaultAzureCredential`` with ``client_id`` (``AZURE_CLIENT_ID``, blank =
      unset) as the user-assigned managed identity.

    Refused with :class:`TokenSelectionError`: a URL that is not an environment root (a path such as
    ``/api/data/v9.2`` would make the wrong scope), plain ``http`` to a non-loopback host (a bearer token in clear
    text), and a static token for a non-loopback host.
    """
    base = url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise TokenSelectionError(
            "DATAVERSE_URL must be the environment URL only, e.g. https://contoso.crm.dynamics.com (no path such as "
            "/api/data/v9.2, no query)"
        )
    loopback = is_loopback_host(parts.hostname)
    if parts.scheme == "http" and not loopback:
        raise TokenSelectionError(
            "DATAVERSE_URL must use https: a bearer token is only sent over plain http to a loopback emulator"
        )
    static = (static_token or "").strip()
    if static:
        if not loopback:
            raise TokenSelectionError(
                "DATAVERSE_STATIC_TOKEN is only accepted with a loopback DATAVERSE_URL (local emulators); remove it "
                "so the managed identity (AZURE_CLIENT_ID) or your az login is used"
            )
        return StaticToken(static)
    if credential is None:
        credential = default_credential((client_id or "").strip() or None)
    return TokenProvider(credential, f"{base}/.default")
