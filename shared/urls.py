"""URL facts shared by settings, adapters, providers and the CLI (neutral: imports nothing of the app)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

WEB_API_PATH = "/api/data/v9.2"  # the Dataverse Web API version this app speaks, everywhere


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def https_or_loopback(value: str, setting: str) -> str:
    """``value`` without a trailing slash; https, or plain http for a loopback host only; no query or fragment."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{setting} must be an absolute URL such as https://contoso.crm.dynamics.com")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{setting} must use https (plain http is only accepted for loopback emulators)")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must not contain a query string or fragment")
    return value
