"""``RTJ_AUTH_MODE=entra``: the relay plug-in proves itself with an Entra ID access token (no shared secret).

The plug-in gets the token from Power Platform's managed identity for plug-ins (``IManagedIdentityService``) and
sends ``Authorization: Bearer <JWT>``. Checked here, with PyJWT (no hand-rolled crypto):

- algorithm RS256 only (``alg: none`` and every HS*/ES*/PS* token are refused before any key is looked up);
- signature against the tenant's published keys: ``<authority>/<tenant>/v2.0/.well-known/openid-configuration``
  → ``jwks_uri``; keys cached (re-read after ``max_age``), an unknown ``kid`` triggers one refresh, at most once per
  ``min_refresh_interval``; keys that cannot be fetched and none cached → 503 (never open);
- ``aud`` = RTJ_TOKEN_AUDIENCE; ``iss`` = the v1 (``https://sts.windows.net/<tid>/``) or v2
  (``<authority>/<tid>/v2.0``) issuer of RTJ_TOKEN_TENANT_ID and ``tid`` = RTJ_TOKEN_TENANT_ID;
  ``exp`` required, ``exp``/``nbf``/``iat`` with a bounded clock skew (``leeway``, default 5 min);
- the calling identity's app id (``azp`` in v2 tokens, ``appid`` in v1) = RTJ_TOKEN_CLIENT_ID, else 403.

Every refusal is logged with its reason, never with the token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from shared.domain.models import HttpReply, InboundHttpRequest
from shared.log import log_event

ACCEPTED_ALGORITHM = "RS256"
DEFAULT_LEEWAY_SECONDS = 300
MAX_TOKEN_CHARS = 16_384
V1_ISSUER = "https://sts.windows.net/{tenant}/"


class SigningKeysUnavailable(Exception):
    """The tenant's keys could not be fetched and none are cached (→ 503)."""


class UnknownSigningKey(Exception):
    """The token's ``kid`` is not among the tenant's published keys, even after the allowed refresh (→ 401)."""


def _json(session: requests.Session, url: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    from shared.settings import is_loopback_host

    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        raise SigningKeysUnavailable(f"refusing a non-https key source {parts.scheme}://{parts.hostname}")
    try:
        response = session.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise SigningKeysUnavailable(f"{parts.hostname}: {exc.__class__.__name__}") from None
    if response.status_code != 200:
        raise SigningKeysUnavailable(f"{parts.hostname}: HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise SigningKeysUnavailable(f"{parts.hostname}: not JSON") from None
    if not isinstance(document, dict):
        raise SigningKeysUnavailable(f"{parts.hostname}: not a JSON object")
    return document


class TenantSigningKeys:
    """The tenant's published signing keys (OpenID metadata → JWKS), cached, thread-safe, refreshed sparingly."""

    def __init__(
        self,
        *,
        authority: str,
        tenant_id: str,
        session: requests.Session,
        timeout: float = 5.0,
        max_age: float = 24 * 3600.0,
        min_refresh_interval: float = 300.0,
        failure_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metadata_url = f"{authority.rstrip('/')}/{tenant_id}/v2.0/.well-known/openid-configuration"
        self._session = session
        self._timeout = timeout
        self._max_age = max_age
        self._min_refresh_interval = min_refresh_interval
        self._failure_backoff = failure_backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._next_fetch = 0.0  # no fetch before this (rate limit after a fetch, backoff after a failure)
        self.fetches = 0

    def signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            if (self._keys is None or now - self._fetched_at >= self._max_age) and now >= self._next_fetch:
                self._fetch(now)
            if self._keys is None:
                raise SigningKeysUnavailable("no signing keys yet (metadata unreachable; retried after a pause)")
            key = self._keys.get(kid)
            if key is None and now >= self._next_fetch:
                self._fetch(now)  # a key Entra ID rotated in since the last read: one refresh, rate-limited
                key = self._keys.get(kid)
            if key is None:
                raise UnknownSigningKey(kid)
            return key

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        try:
            metadata = _json(self._session, self.metadata_url, self._timeout)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise SigningKeysUnavailable("OpenID metadata has no jwks_uri")
            keys = self._parse(_json(self._session, jwks_uri, self._timeout))
        except SigningKeysUnavailable as why:
            self._next_fetch = now + self._failure_backoff
            log_event("rtj.signing_keys_unavailable", logging.ERROR, reason=str(why), cached=self._keys is not None)
            if self._keys is None:
                raise
            return  # keep serving the cached keys
        self._keys, self._fetched_at, self._next_fetch = keys, now, now + self._min_refresh_interval
        log_event("rtj.signing_keys_loaded", count=len(keys))

    @staticmethod
    def _parse(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            if not isinstance(entry.get("kid"), str):
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry, algorithm=ACCEPTED_ALGORITHM)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
                continue  # one malformed entry must not take the others down
        if not keys:
            raise SigningKeysUnavailable("the JWKS document has no RSA signing keys")
        return keys


class EntraAuthorizer:
    """Validates the relay plug-in's bearer token (see the module docstring)."""

    def __init__(
        self,
        *,
        audience: str,
        tenant_id: str,
        client_id: str,
        keys: TenantSigningKeys,
        authority: str = "https://login.microsoftonline.com",
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        self._audience = audience
        self._tenant = tenant_id.lower()
        self._client = client_id.lower()
        self._keys = keys
        self._leeway = leeway_seconds
        self._issuers = {
            V1_ISSUER.format(tenant=self._tenant),
            f"{authority.rstrip('/')}/{self._tenant}/v2.0",
            f"https://login.microsoftonline.com/{self._tenant}/v2.0",
        }

    def authorize(self, request: InboundHttpRequest) -> HttpReply | None:
        from shared.adapters.rtj_auth import error_reply

        try:
            claims = self._claims(request.header("authorization") or "")
        except _Refused as refused:
            log_event("rtj.auth_refused", logging.WARNING, status=refused.status, reason=refused.reason)
            return error_reply(refused.status, refused.public)
        app_id_claim = "appid" if claims.get("ver") == "1.0" else "azp"
        app_id = str(claims.get(app_id_claim) or "").lower()
        if app_id != self._client:
            log_event("rtj.auth_refused", logging.WARNING, status=403, reason="wrong client", caller_app_id=app_id)
            return error_reply(403, "this token was not issued to the relay's identity")
        return None

    def _claims(self, authorization: str) -> dict[str, Any]:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused(401, "missing bearer token", "missing Authorization: Bearer <token>")
        if len(token) > MAX_TOKEN_CHARS:
            raise _Refused(401, "token too long", "invalid token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _Refused(401, "malformed token", "invalid token") from None
        algorithm = header.get("alg")
        if algorithm != ACCEPTED_ALGORITHM:
            raise _Refused(401, f"algorithm {str(algorithm)[:16]} refused", "invalid token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Refused(401, "token has no kid", "invalid token")
        try:
            key = self._keys.signing_key(kid)
        except SigningKeysUnavailable:
            raise _Refused(503, "signing keys unavailable", "token validation is unavailable; retry later") from None
        except UnknownSigningKey:
            raise _Refused(401, "unknown signing key", "invalid token") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[ACCEPTED_ALGORITHM],
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _Refused(401, "token expired", "token expired") from None
        except jwt.ImmatureSignatureError:
            raise _Refused(401, "token not yet valid", "invalid token") from None
        except jwt.InvalidAudienceError:
            raise _Refused(401, "wrong audience", "invalid token") from None
        except jwt.InvalidSignatureError:
            raise _Refused(401, "bad signature", "invalid token") from None
        except jwt.MissingRequiredClaimError as missing:
            raise _Refused(401, f"missing claim {missing.claim}", "invalid token") from None
        except jwt.InvalidTokenError as other:
            raise _Refused(401, f"invalid token ({other.__class__.__name__})", "invalid token") from None
        if claims.get("iss") not in self._issuers or str(claims.get("tid")).lower() != self._tenant:
            raise _Refused(401, "wrong tenant or issuer", "invalid token")
        return claims


class _Refused(Exception):
    def __init__(self, status: int, reason: str, public: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason  # logged
        self.public = public  # answered
