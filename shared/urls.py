"""URL facts shared by settings, adapters, providers and the CLI (neutral: imports nothing of the app)."""

from __future__ import annotations

import ipaddress

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
