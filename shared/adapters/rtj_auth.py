"""Who may call ``POST /api/rtj/outbound``: the relay plug-in's credential, checked before anything is read.

An :class:`RtjAuthorizer` answers ``None`` (allowed) or the error reply to send. The outbound use case takes one
and knows nothing of how the caller proves itself.
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


class SecretAuthorizer:
    """Shared-secret mode: ``X-Channel-Secret`` (or ``Authorization: Bearer <secret>``) equals RTJ_OUTBOUND_SECRET."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret

    def authorize(self, request: InboundHttpRequest) -> HttpReply | None:
        expected = self._secret
        if not expected:
            return error_reply(503, "real-time journeys outbound is not configured (RTJ_OUTBOUND_SECRET)")
        given = request.header("x-channel-secret") or ""
        authorization = request.header("authorization") or ""
        if not given and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not given:
            return error_reply(401, "missing X-Channel-Secret")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log_event("rtj.outbound_forbidden", logging.WARNING)
            return error_reply(403, "invalid secret")
        return None
