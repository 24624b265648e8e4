"""Every Web API request provisioning makes goes through :class:`Gateway`: reads always run, writes run unless
``dry_run``; each request can be echoed (method, URL, the headers that matter, JSON body with secrets masked)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.dataverse import DataverseClient
from shared.domain.errors import NotFound

SECRET_FIELDS = frozenset({"saskey", "sastoken", "authvalue"})
SHOWN_HEADERS = ("MSCRM.SolutionUniqueName", "If-Match", "Prefer")
MASK = "***"
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")


def masked(body: Any, fields: frozenset[str] = SECRET_FIELDS) -> Any:
    if isinstance(body, dict):
        return {k: (MASK if k in fields and v else masked(v, fields)) for k, v in body.items()}
    if isinstance(body, list):
        return [masked(v, fields) for v in body]
    return body


@dataclass(frozen=True)
class WebRequest:
    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    secret_fields: frozenset[str] = frozenset()  # more fields to mask in this request's body

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def render(self, api: str) -> str:
        url = f"{api}/{self.path}"
        if self.params:
            url += "?" + "&".join(f"{k}={v}" for k, v in self.params.items())
        lines = [f"{self.method} {url}"]
        lines += [f"  {name}: {self.headers[name]}" for name in SHOWN_HEADERS if name in self.headers]
        if self.body is not None:
            text = json.dumps(masked(self.body, SECRET_FIELDS | self.secret_fields), indent=2, ensure_ascii=False)
            lines += ["  " + line for line in text.splitlines()]
        return "\n".join(lines)


class Gateway:
    def __init__(
        self, client: DataverseClient, *, dry_run: bool = False, echo: Callable[[str], None] | None = None
    ) -> None:
        self.client = client
        self.dry_run = dry_run
        self.echo = echo
        self.log: list[WebRequest] = []

    @property
    def api(self) -> str:
        return self.client.api

    @property
    def writes(self) -> list[WebRequest]:
        return [r for r in self.log if r.is_write]

    def _record(self, request: WebRequest) -> None:
        self.log.append(request)
        if self.echo is not None:
            self.echo(request.render(self.api))

    def read(self, path: str, params: Mapping[str, str] | None = None, *, operation: str) -> dict[str, Any] | None:
        """GET; ``None`` when Dataverse answers 404."""
        self._record(WebRequest("GET", path, dict(params) if params else None))
        try:
            result: dict[str, Any] = self.client.request("GET", path, params=params, operation=operation).json()
        except NotFound:
            return None
        return result

    def rows(self, path: str, params: Mapping[str, str], *, operation: str) -> list[dict[str, Any]]:
        found = self.read(path, params, operation=operation) or {}
        value = found.get("value", [])
        return list(value) if isinstance(value, list) else []

    def write(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        operation: str,
        headers: Mapping[str, str] | None = None,
        placeholder: str = "",
        secret_fields: frozenset[str] = frozenset(),
    ) -> str:
        """POST/PATCH; returns the id from ``OData-EntityId`` (``placeholder`` in a dry run, "" if none)."""
        request = WebRequest(method, path, None, body, dict(headers or {}), secret_fields)
        self._record(request)
        if self.dry_run:
            return placeholder
        response = self.client.request(method, path, body=body, headers=headers, operation=operation)
        found = _ENTITY_ID.search(response.headers.get("OData-EntityId", ""))
        return found.group(1).lower() if found else ""
