"""Where the Service Bus SAS key for the Dataverse service endpoint comes from.

The key is only fetched when it is going to be written (new endpoint, ``--rotate-key``, or Dataverse reports
no key set), so a re-run needs no access to Key Vault. Values may be a bare key or a Service Bus connection
string (``Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…``), which is what the infra's
``DATAVERSE_SB_SECRET_NAME`` secret holds; a connection string is checked against the endpoint's values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEY_VAULT_SCOPE = "https://vault.azure.net/.default"
KEY_VAULT_API_VERSION = "7.4"
_VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")


class SecretError(ValueError):
    """The SAS key could not be obtained or does not fit the endpoint."""


@dataclass(frozen=True)
class EndpointTarget:
    namespace: str  # Service Bus namespace name (without .servicebus.windows.net)
    queue: str
    sas_key_name: str


def key_from_value(value: str, target: EndpointTarget) -> str:
    """The SAS key from a bare key or a connection string (validated against ``target``)."""
    value = value.strip()
    if not value:
        raise SecretError("the SAS key is empty")
    if not value.lower().startswith("endpoint="):
        return value
    parts: dict[str, str] = {}
    for item in value.split(";"):
        name, sep, item_value = item.partition("=")
        if sep:
            parts[name.strip().lower()] = item_value.strip()
    key = parts.get("sharedaccesskey")
    if not key:
        raise SecretError("the connection string has no SharedAccessKey (a SAS rule is needed, not a SAS token)")
    host = parts.get("endpoint", "").removeprefix("sb://").split("/", 1)[0].lower()
    expected_host = f"{target.namespace}.servicebus.windows.net".lower()
    problems = []
    if host and host != expected_host:
        problems.append(f"its Endpoint is {host}, not {expected_host}")
    if parts.get("sharedaccesskeyname", target.sas_key_name) != target.sas_key_name:
        problems.append(f"its SharedAccessKeyName is {parts['sharedaccesskeyname']}, not {target.sas_key_name}")
    entity = parts.get("entitypath")
    if entity and entity != target.queue:
        problems.append(f"its EntityPath is {entity}, not {target.queue}")
    if problems:
        raise SecretError("the connection string does not match the endpoint: " + "; ".join(problems))
    return key


def key_vault_secret(
    vault: str,
    name: str,
    *,
    credential: Any = None,
    http_get: Callable[..., Any] | None = None,
) -> str:
    """Read a secret with a plain HTTPS GET (``/secrets/<name>?api-version=7.4``) and azure-identity."""
    if not _VAULT_NAME.match(vault):
        raise SecretError(f"Key Vault name {vault!r} is invalid (3-24 letters, digits and hyphens)")
    if not _SECRET_NAME.match(name):
        raise SecretError(f"secret name {name!r} is invalid (letters, digits and hyphens)")
    if credential is None:
        from azure.identity import DefaultAzureCredential  # lazy: only a key read needs it

        credential = DefaultAzureCredential()
    if http_get is None:
        import requests

        http_get = requests.get
    token = credential.get_token(KEY_VAULT_SCOPE).token
    url = f"https://{vault}.vault.azure.net/secrets/{name}"
    response = http_get(
        url,
        params={"api-version": KEY_VAULT_API_VERSION},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=20,
    )
    if response.status_code != 200:
        try:
            detail = response.json().get("error", {}).get("message", "")
        except ValueError:
            detail = ""
        raise SecretError(f"Key Vault {vault}: reading secret {name} failed with HTTP {response.status_code} {detail}")
    value = response.json().get("value")
    if not isinstance(value, str) or not value:
        raise SecretError(f"Key Vault {vault}: secret {name} has no value")
    return value
