"""Bearer tokens for Dataverse: one azure-identity credential per process, tokens cached and refreshed early."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class _AccessToken(Protocol):
    token: str
    expires_on: int


class TokenCredentialLike(Protocol):
    def get_token(self, *scopes: str) -> _AccessToken: ...


REFRESH_MARGIN_SECONDS = 300


class TokenProvider:
    """Caches one token per scope; refreshes it ``REFRESH_MARGIN_SECONDS`` before it expires."""

    def __init__(self, credential: TokenCredentialLike, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = threading.Lock()
        self.acquisitions = 0

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or self._token is None or time.time() >= self._expires_on - REFRESH_MARGIN_SECONDS:
                access = self._credential.get_token(self._scope)
                self._token = access.token
                self._expires_on = float(access.expires_on)
                self.acquisitions += 1
            return self._token


class StaticToken:
    """A fixed token for loopback emulators only (settings refuse it for any other host)."""

    def __init__(self, value: str) -> None:
        self._value = value
        self.acquisitions = 0

    def token(self, *, force_refresh: bool = False) -> str:
        return self._value


def default_credential(client_id: str | None) -> TokenCredentialLike:
    """``DefaultAzureCredential`` honouring ``AZURE_CLIENT_ID`` (user-assigned managed identity in Azure)."""
    from azure.identity import DefaultAzureCredential  # lazy: only paths that need a token pay for it

    return DefaultAzureCredential(managed_identity_client_id=client_id)  # type: ignore[return-value]
