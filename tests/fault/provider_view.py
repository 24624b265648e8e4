"""The provider's own view of what it holds, for the fault run's reconciliation (issue #13).

Twilio: every accepted message is kept with its creation time and becomes visible in the Messages list resource only
after a random lag (eventual consistency); list requests fail at a configured rate (500 / 429 / read timeout), and
the list pages newest first with ``PageSize`` / ``Page`` / ``PageToken`` / ``next_page_uri`` as Twilio does.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass(frozen=True)
class Held:
    sid: str
    to: str
    from_: str
    body: str
    created: datetime
    visible_at: datetime


class TwilioView:
    def __init__(self, rng: random.Random, account_sid: str, *, max_lag_seconds: float, fault_rate: float) -> None:
        self._rng = rng
        self._account = account_sid
        self._max_lag = max_lag_seconds
        self.fault_rate = fault_rate
        self._by_to: dict[str, list[Held]] = defaultdict(list)
        self.lookups = 0
        self.faults: dict[str, int] = defaultdict(int)
        self.lagging_hidden = 0  # list requests that did not (yet) show a message created earlier

    def accept(self, sid: str, to: str, from_: str, body: str, now: datetime) -> None:
        lag = timedelta(seconds=self._rng.uniform(0, self._max_lag))
        self._by_to[to].append(Held(sid, to, from_, body, now, now + lag))

    def fault(self) -> str | None:
        """Whether this list request fails, and how (500 / 429 / timeout)."""
        if self._rng.random() >= self.fault_rate:
            return None
        kind = self._rng.choice(["500", "429", "timeout"])
        self.faults[kind] += 1
        return kind

    def page(self, url: str, params: Mapping[str, str] | None, now: datetime) -> dict[str, Any]:
        self.lookups += 1
        query = dict(params or {})
        if not query:
            query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        to, sender = query.get("To", ""), query.get("From")
        held = self._by_to.get(to, [])
        visible = [m for m in held if m.visible_at <= now and (sender is None or m.from_ == sender)]
        self.lagging_hidden += len(held) - len([m for m in held if m.visible_at <= now])
        visible.sort(key=lambda m: (m.created, m.sid), reverse=True)
        size = max(1, min(int(query.get("PageSize", "50")), 1000))
        number = int(query.get("Page", "0"))
        items = visible[number * size : (number + 1) * size]
        path = urlsplit(url).path
        next_uri = None
        if (number + 1) * size < len(visible):
            following = {**{k: v for k, v in query.items() if k in ("To", "From")}, "PageSize": str(size)}
            following |= {"Page": str(number + 1), "PageToken": "PA" + items[-1].sid}
            next_uri = f"{path}?{urlencode(following)}"
        return {
            "messages": [self._resource(m) for m in items],
            "page": number,
            "page_size": size,
            "next_page_uri": next_uri,
        }

    def _resource(self, held: Held) -> dict[str, Any]:
        created = format_datetime(held.created)
        return {
            "sid": held.sid,
            "account_sid": self._account,
            "to": held.to,
            "from": held.from_,
            "body": held.body,
            "direction": "outbound-api",
            "date_created": created,
            "date_sent": created,
            "status": "sent",
            "messaging_service_sid": None,
        }
