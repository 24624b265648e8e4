"""The HTTP session every adapter shares: pooled keep-alive connections, environment settings read once per host.

``requests`` re-reads the proxy and CA-bundle environment variables on every request (it walks the whole process
environment twice per call); the process environment does not change under a running worker, so this session
resolves them once per scheme and host and reuses the answer. Everything else is plain ``requests.Session``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter


class KeepAliveSession(requests.Session):
    def __init__(self, pool_size: int = 32) -> None:
        super().__init__()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self._environment: dict[tuple[Any, ...], Any] = {}
        self._environment_lock = threading.Lock()

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Mapping[str, str] | None, stream: Any, verify: Any, cert: Any
    ) -> Any:
        text = url.decode() if isinstance(url, bytes) else (url or "")
        parts = urlsplit(text)
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, str(cert))
        with self._environment_lock:
            cached = self._environment.get(key)
        if cached is None:
            cached = super().merge_environment_settings(url, dict(proxies or {}), stream, verify, cert)
            with self._environment_lock:
                if len(self._environment) < 256:  # a handful of hosts in practice; bounded regardless
                    self._environment[key] = cached
        return {**cached, "proxies": dict(cached["proxies"])}  # callers may change the mapping they get


def new_session(pool_size: int = 32) -> requests.Session:
    """A pooled session: keep-alive connections to Dataverse and the provider, reused across invocations."""
    return KeepAliveSession(pool_size)
