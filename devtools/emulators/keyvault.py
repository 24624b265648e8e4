"""Loopback emulator of the Azure Key Vault secrets data plane: ``GET /secrets/{name}[/{version}]``.

As strict as the service for that one operation (Microsoft Learn, REST "Get Secret"; SDK recordings for the 401):

* ``api-version`` query parameter required, else ``400 BadParameter`` [message text INFERRED];
* ``Authorization: Bearer <token>`` required, else ``401`` with ``WWW-Authenticate: Bearer authorization="<login
  authority>/<tenant>", resource="https://vault.azure.net"`` and ``{"error": {"code": "Unauthorized", "message":
  "Request is missing a Bearer or PoP token."}}``; with ``token`` set, any other bearer value is ``401`` too;
* a name that breaks the secret name rules (1-127 letters, digits, hyphens) is ``400 BadParameter`` [INFERRED];
* an unknown secret or version is ``404 SecretNotFound`` with the service's message;
* ``deny(name)`` answers ``403 Forbidden`` / ``ForbiddenByRbac`` (the caller lacks "Key Vault Secrets User"), a
  disabled secret ``403 Forbidden`` / ``SecretDisabled``;
* found: ``200 {"value", "id": "<vault>/secrets/<name>/<version>", "attributes": {...}}``.

Every other method or path is ``405`` / ``404``. Faults and latency come from :class:`EmulatorBase`. Secret values
never appear in the request log (only the Authorization header would carry anything sensitive, and it is redacted).

Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from devtools.emulators._base import EmulatorBase, Incoming, Response, serve_forever

__all__ = ["KeyVaultEmulator", "main"]

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_PATH = re.compile(r"^/secrets/([^/]*)(?:/([^/]*))?/?$")
_NOT_FOUND = (
    "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be "
    "able to recover it using the correct recovery command. For help resolving this issue, please see "
    "https://go.microsoft.com/fwlink/?linkid=2125182"
)
_RBAC_DENIED = (
    "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role "
    "definitions were changed recently, please observe propagation time.\r\n"
    "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nAssignment: (not found)"
)


@dataclass
class _Version:
    value: str
    version: str
    enabled: bool
    created: int


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)


class KeyVaultEmulator(EmulatorBase):
    """``set_secret`` stores a new version (the latest is what a version-less GET returns)."""

    server_name = "keyvault"

    def __init__(
        self,
        *,
        token: str | None = None,
        tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.tenant_id = tenant_id
        self._secrets: dict[str, _Secret] = {}
        self._denied: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(host=host, port=port)

    # -- state -------------------------------------------------------------
    def set_secret(self, name: str, value: str, *, enabled: bool = True) -> str:
        """Store ``value`` as the new latest version of ``name``; returns the version id."""
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a Key Vault secret name (1-127 letters, digits, hyphens)")
        version = uuid.uuid4().hex
        with self._lock:
            secret = self._secrets.setdefault(name.lower(), _Secret())
            secret.versions.append(_Version(value, version, enabled, int(time.time())))
        return version

    def deny(self, name: str) -> None:
        """From now on the caller is not authorised to read ``name`` (as without an RBAC role): 403."""
        with self._lock:
            self._denied.add(name.lower())

    def gets(self, name: str) -> int:
        """How many GET requests asked for ``name`` (any answer)."""
        return sum(
            1
            for r in self.requests
            if r.method == "GET" and (m := _PATH.match(r.path)) and unquote(m.group(1)).lower() == name.lower()
        )

    # -- routing -----------------------------------------------------------
    def _route(self, request: Incoming) -> Response:
        match = _PATH.match(request.path)
        if match is None:
            return _error(404, "NotFound", f"The requested path {request.path} was not found.")
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", f"The requested method {request.method} is not supported here.")
        if not parse_qs(request.query_string).get("api-version", [""])[0]:
            return _error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
        challenge = self._challenge(request.header("authorization"))
        if challenge is not None:
            return challenge
        name, version = unquote(match.group(1)), unquote(match.group(2) or "")
        if not _NAME.match(name):
            return _error(400, "BadParameter", f"Invalid secret name {name!r}: 1-127 letters, digits and hyphens.")
        with self._lock:
            secret = self._secrets.get(name.lower())
            denied = name.lower() in self._denied
            found = None
            if secret is not None:
                candidates = [v for v in secret.versions if v.version == version] if version else secret.versions[-1:]
                found = candidates[0] if candidates else None
        if denied:
            return _error(403, "Forbidden", _RBAC_DENIED, inner="ForbiddenByRbac")
        if found is None:
            return _error(404, "SecretNotFound", _NOT_FOUND.format(name=name))
        if not found.enabled:
            return _error(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
            )
        return _json(
            200,
            {
                "value": found.value,
                "id": f"{self.url}/secrets/{name}/{found.version}",
                "attributes": {
                    "enabled": True,
                    "created": found.created,
                    "updated": found.created,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            },
        )

    def _challenge(self, authorization: str) -> Response | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip() and (self.token is None or value.strip() == self.token):
            return None
        message = "Request is missing a Bearer or PoP token." if not value.strip() else "The access token is invalid."
        response = _error(401, "Unauthorized", message)
        response.headers.append(
            (
                "WWW-Authenticate",
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                'resource="https://vault.azure.net"',
            )
        )
        return response


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(
        status,
        json.dumps(payload).encode("utf-8"),
        [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-cache")],
    )


def _error(status: int, code: str, message: str, *, inner: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return _json(status, {"error": error})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a loopback Azure Key Vault (secrets GET) emulator.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=None, help="the only bearer token accepted (default: any)")
    parser.add_argument(
        "--secret", action="append", default=[], metavar="NAME=VALUE", help="a secret to serve (repeatable)"
    )
    args = parser.parse_args(argv)
    emulator = KeyVaultEmulator(token=args.token, host=args.host, port=args.port)
    for item in args.secret:
        name, sep, value = item.partition("=")
        if not sep:
            emulator.stop()
            parser.error(f"--secret {name!r}: expected NAME=VALUE")
        emulator.set_secret(name, value)
    return serve_forever(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
