"""How short links are stored in the state table (issue #16): two record types of the generic record store.

- ``PartitionKey`` = the short code, ``RowKey`` = ``link``: where the code redirects, its activity, its expiry;
- ``PartitionKey`` = the activity's record key, ``RowKey`` = ``links``: the activity's codes by original URL (a
  resend of the same activity reuses them: one code per activity and URL).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.domain.links import ActivityLinks, ShortLink
from shared.records.codecs import parse_time


class ShortLinkCodec:
    row = "link"

    def encode(self, link: ShortLink) -> dict[str, Any]:
        return {
            "code": link.code,
            "activity_key": link.activity_key,
            "url": link.url,
            "expires_at": link.expires_at.isoformat(),
            "updated_at": link.updated_at.isoformat() if link.updated_at else "",
        }

    def decode(self, values: Mapping[str, Any], etag: str) -> ShortLink:
        expires_at = parse_time(values.get("expires_at"))
        if expires_at is None:
            raise ValueError("a stored short link has no expires_at")
        return ShortLink(
            code=str(values["code"]),
            activity_key=str(values["activity_key"]),
            url=str(values["url"]),
            expires_at=expires_at,
            updated_at=parse_time(values.get("updated_at")),
            etag=etag,
        )


class ActivityLinksCodec:
    row = "links"

    def encode(self, links: ActivityLinks) -> dict[str, Any]:
        return {
            "activity_key": links.activity_key,
            "codes": json.dumps(links.codes, sort_keys=True),
            "updated_at": links.updated_at.isoformat() if links.updated_at else "",
        }

    def decode(self, values: Mapping[str, Any], etag: str) -> ActivityLinks:
        return ActivityLinks(
            activity_key=str(values["activity_key"]),
            codes=dict(json.loads(values.get("codes") or "{}")),
            updated_at=parse_time(values.get("updated_at")),
            etag=etag,
        )


SHORT_LINKS = ShortLinkCodec()
ACTIVITY_LINKS = ActivityLinksCodec()
