"""The Twilio emulator's Messages list resource (``GET /2010-04-01/Accounts/{AccountSid}/Messages.json``).

As Twilio documents it: filters ``To``, ``From`` and ``DateSent`` (``YYYY-MM-DD`` or an ISO 8601 time; ``DateSent``
is that day, ``DateSent<`` on or before, ``DateSent>`` on or after; a message not yet sent has no ``date_sent`` and
never matches a ``DateSent`` filter), newest first, paged with ``PageSize`` (default 50, at most 1000), ``Page`` and
``PageToken``, and ``next_page_uri`` / ``previous_page_uri`` / ``first_page_uri``. Eventual consistency: a message
appears in the list ``lag`` seconds after it was created (fetching it by sid works at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


class ListError(ValueError):
    """A bad list request: (Twilio error code, message), answered with HTTP 400."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Listed:
    sid: str
    to: str
    from_: str | None
    date_sent: str | None  # RFC 2822, None until sent
    created_ts: float
    resource: Callable[[], dict[str, Any]]


def _bound(value: str, name: str) -> tuple[datetime, bool]:
    """The filter value as a time, and whether it names a whole day."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False
    except ValueError:
        raise ListError(20001, f"Invalid {name}: expected YYYY-MM-DD or an ISO 8601 date-time") from None


def _matches_date(sent: datetime, query: dict[str, str]) -> bool:
    for name in ("DateSent", "DateSent<", "DateSent>"):
        if name not in query:
            continue
        bound, whole_day = _bound(query[name], name)
        if name == "DateSent" and (sent.date() != bound.date() if whole_day else sent != bound):
            return False
        if name == "DateSent<" and (sent.date() > bound.date() if whole_day else sent > bound):
            return False
        if name == "DateSent>" and (sent.date() < bound.date() if whole_day else sent < bound):
            return False
    return True


def list_page(path: str, raw_query: str, messages: Sequence[Listed], now_ts: float, lag: float) -> dict[str, Any]:
    """One page of the list, as Twilio renders it. Raises :class:`ListError` for bad parameters."""
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    try:
        size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        number = int(query.get("Page", 0))
    except ValueError:
        raise ListError(20001, "PageSize and Page must be integers") from None
    if not 1 <= size <= MAX_PAGE_SIZE or number < 0:
        raise ListError(20001, f"PageSize must be 1..{MAX_PAGE_SIZE} and Page non-negative")
    dated = any(name.startswith("DateSent") for name in query)
    chosen = []
    for message in messages:
        if message.created_ts + lag > now_ts:
            continue  # not listed yet (eventual consistency)
        if "To" in query and message.to != query["To"]:
            continue
        if "From" in query and (message.from_ or "") != query["From"]:
            continue
        if dated and (message.date_sent is None or not _matches_date(parsedate_to_datetime(message.date_sent), query)):
            continue
        chosen.append(message)
    order = {id(m): i for i, m in enumerate(chosen)}
    chosen.sort(key=lambda m: (m.created_ts, order[id(m)]), reverse=True)  # newest first, then latest created
    start = number * size
    token = query.get("PageToken")
    if token:
        sids = [m.sid for m in chosen]
        if not token.startswith("PA") or token[2:] not in sids:
            raise ListError(20001, "Invalid PageToken")
        start = sids.index(token[2:]) + 1
    items = chosen[start : start + size]
    kept = {k: v for k, v in query.items() if k in _FILTERS}

    def uri(page: int, page_token: str | None = None) -> str:
        params = {**kept, "PageSize": str(size), "Page": str(page)}
        if page_token:
            params["PageToken"] = page_token
        return f"{path}?{urlencode(params)}"

    more = start + size < len(chosen)
    return {
        "messages": [m.resource() for m in items],
        "uri": uri(number, token),
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1, "PA" + items[-1].sid) if more and items else None,
        "previous_page_uri": uri(number - 1) if number > 0 else None,
        "page": number,
        "page_size": size,
        "start": start,
        "end": start + max(len(items) - 1, 0),
    }
