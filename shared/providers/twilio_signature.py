"""X-Twilio-Signature validation (HMAC-SHA1 over the public URL + sorted POST params, Base64).

Follows Twilio's published algorithm, including the ``bodySHA256`` variant for JSON bodies and the port
variants Twilio's own validators accept (with and without the scheme's default port).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit, urlunsplit


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    payload = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    without = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    port = parts.port or default_port
    with_port = urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))
    return [url] + [u for u in (without, with_port) if u != url]


def validate(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str | None, body: bytes | None = None
) -> bool:
    """True when ``signature`` matches ``url`` + ``params`` (or the JSON-body form with ``bodySHA256``)."""
    if not signature:
        return False
    param_list = list(params)
    query = parse_qs(urlsplit(url).query)
    if "bodySHA256" in query and body is not None:
        expected_hash = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(query["bodySHA256"][0].encode("utf-8", "replace"), expected_hash.encode()):
            return False
        param_list = []
    valid = False
    for candidate in _port_variants(url):
        expected = compute_signature(auth_token, candidate, param_list)
        # compare every variant (no early exit) to keep timing independent of which one matched
        # bytes: compare_digest refuses non-ASCII str, and the header is attacker-controlled
        valid = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")) or valid
    return valid
