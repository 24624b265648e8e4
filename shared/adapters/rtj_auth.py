"""Who may call ``POST /api/rtj/outbound``: the relay plug-in's credential, checked before anything is read.

An :class:`RtjAuthorizer` answers ``None`` (allowed) or the error reply to send. The outbound use case takes one
and knows nothing of how the caller proves itself. :func:`shared.bootstrap.build_authorizer` picks one from
``RTJ_AUTH_MODE``: ``entra`` (default; :mod:`shared.adapters.entra_auth`) or ``secret``. A mode whose settings are
missing, or hold an unresolved Key Vault reference, gets an authorizer that refuses every call with 503 naming them:
never open.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Protocol

from shared.domain.models import HttpReply, InboundHttpRequest
from shared.log import log_event


class RtjAuthorizer(Protocol):
    def authorize(self, request: InboundHttpRequest) -> HttpReply | None:
        """``None`` when the caller is the relay; otherwise the 401/403/503 reply, logged without the credential."""
        ...


def error_reply(status: int, message: str) -> HttpReply:
    return HttpReply(status, json.dumps({"error": message}).encode(), "application/json")


class UnavailableAuthorizer:
    """Fail closed: the configured mode cannot check anything yet, so every call gets 503 naming the settings."""

    def __init__(self, settings: list[str], why: str = "not configured") -> None:
        self.settings = settings
        self._why = why

    def authorize(self, request: InboundHttpRequest) -> HttpReply | None:
        names = ", ".join(self.settings)
        log_event("rtj.outbound_unavailable", logging.ERROR, settings=names, reason=self._why)
        return error_reply(503, f"real-time journeys outbound is unavailable: {names} {self._why}")


class SecretAuthorizer:
    """Shared-secret mode: ``X-Channel-Secret`` (or ``Authorization: Bearer <secret>``) equals RTJ_OUTBOUND_SECRET."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret

    def authorize(self, request: InboundHttpRequest) -> HttpReply | None:
        expected = self._secret
        if not expected:
            return UnavailableAuthorizer(["RTJ_OUTBOUND_SECRET"]).authorize(request)
        given = request.header("x-channel-secret") or ""
        authorization = request.header("authorization") or ""
        if not given and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            return error_reply(401, "missing X-Channel-Secret")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            log_event("rtj.outbound_forbidden", logging.WARNING)
            return error_reply(403, "invalid secret")
        return None
