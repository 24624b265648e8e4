"""SAS key sources: bare key, connection string (checked against the endpoint), Key Vault over HTTPS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from provisioning.secrets import EndpointTarget, SecretError, key_from_value, key_vault_secret

TARGET = EndpointTarget("sb-contoso", "activities", "dataverse-send")
CONN = "Endpoint=sb://sb-contoso.servicebus.windows.net/;SharedAccessKeyName=dataverse-send;SharedAccessKey=abc=;EntityPath=activities"


def test_bare_key_and_connection_string() -> None:
    assert key_from_value(" abc= ", TARGET) == "abc="
    assert key_from_value(CONN, TARGET) == "abc="


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (CONN.replace("sb-contoso", "other"), "Endpoint is other.servicebus.windows.net"),
        (CONN.replace("KeyName=dataverse-send", "KeyName=RootManageSharedAccessKey"), "SharedAccessKeyName"),
        (CONN.replace(";SharedAccessKey=abc=", ""), "no SharedAccessKey"),
        ("", "empty"),
    ],
)
def test_mismatching_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(SecretError, match=message):
        key_from_value(value, TARGET)


@dataclass
class _Token:
    token: str


class _Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> _Token:
        self.scopes.extend(scopes)
        return _Token("kv-token")


class _Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code = status
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


def test_key_vault_secret_is_a_plain_https_get() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def http_get(url: str, **kwargs: Any) -> _Response:
        calls.append((url, kwargs))
        return _Response(200, {"value": CONN})

    credential = _Credential()
    assert key_vault_secret("kv-contoso", "dataverse-sb", credential=credential, http_get=http_get) == CONN
    assert credential.scopes == ["https://vault.azure.net/.default"]
    url, kwargs = calls[0]
    assert url == "https://kv-contoso.vault.azure.net/secrets/dataverse-sb"
    assert kwargs["params"] == {"api-version": "7.4"}
    assert kwargs["headers"]["Authorization"] == "Bearer kv-token"


def test_key_vault_errors_name_the_secret() -> None:
    def http_get(url: str, **kwargs: Any) -> _Response:
        return _Response(403, {"error": {"message": "Forbidden by policy"}})

    with pytest.raises(SecretError, match="dataverse-sb failed with HTTP 403 Forbidden by policy"):
        key_vault_secret("kv-contoso", "dataverse-sb", credential=_Credential(), http_get=http_get)
    with pytest.raises(SecretError, match="invalid"):
        key_vault_secret("kv/../x", "s", credential=_Credential(), http_get=http_get)
