"""Link tracking settings (issue #16), a mixin of :class:`shared.settings.Settings`.

- ``LINK_TRACKING`` (default false): replace every http(s) URL of an outbound-marketing text by a short link;
- ``LINK_BASE_URL``: the base of the short links, ``<LINK_BASE_URL>/l/<code>``. Unset: the app's own route prefix,
  ``<CALLBACK_BASE_URL>/api`` (the Functions host serves every route under ``/api``, so the default links land on
  ``GET /api/l/{code}``); a partner's short domain must forward ``/l/<code>`` to the app's ``/api/l/<code>``;
- ``LINK_TTL_DAYS`` (default 90): how long a short link redirects after the send.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from shared.urls import is_loopback_host

ROUTE_PREFIX = "/api"  # host.json's default routePrefix: every HTTP route of the app is below it


class LinkSettings(BaseModel):
    link_tracking: bool = Field(default=False, validation_alias="LINK_TRACKING")
    link_base_url: str | None = Field(default=None, validation_alias="LINK_BASE_URL")
    link_ttl_days: int = Field(default=90, ge=1, le=3650, validation_alias="LINK_TTL_DAYS")

    @field_validator("link_tracking", mode="before")
    @classmethod
    def _blank_tracking(cls, value: object) -> object:
        return False if isinstance(value, str) and not value.strip() else value

    @field_validator("link_ttl_days", mode="before")
    @classmethod
    def _blank_ttl(cls, value: object) -> object:
        return 90 if isinstance(value, str) and not value.strip() else value

    @field_validator("link_base_url", mode="before")
    @classmethod
    def _check_link_base(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("LINK_BASE_URL must be an absolute URL such as https://sms.contoso.com")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("LINK_BASE_URL must use https (plain http only for loopback test hosts)")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError("LINK_BASE_URL must be a plain base URL (no query, fragment or credentials)")
        return text

    def short_link_base(self, callback_base_url: str) -> str:
        """The prefix of every short link (``<base>/l/<code>``)."""
        return self.link_base_url or f"{callback_base_url.rstrip('/')}{ROUTE_PREFIX}"

    @property
    def link_ttl(self) -> timedelta:
        return timedelta(days=self.link_ttl_days)
