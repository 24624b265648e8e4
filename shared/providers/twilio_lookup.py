"""Twilio: does the account hold the message of an ambiguous send? (the Messages list resource; issue #13)

``GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=..&From=..&PageSize=..`` lists the messages to the
recipient newest first; we follow ``next_page_uri`` until the items are older than the send window, then apply the
match rule of :func:`shared.domain.reconcile.match` (outbound, created inside the window, same body digest, not
attributed to another record). ``DateSent`` is deliberately *not* used as a filter: Twilio sets ``date_sent`` only when
a message leaves its sender queue, so a message still queued would be missing from a ``DateSent`` query and look
absent (a resend would then text the contact twice). Any trouble (unreachable, 429, 5xx, a page limit) is
``unknown``: asked again later, never resent.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.domain import reconcile
from shared.domain.reconcile import Candidate, Lookup, SentQuery

PAGE_SIZE = 100
MAX_PAGES = 10  # 1,000 messages to one number since the window: beyond that, unknown (asked again later)


def _created(item: dict[str, Any]) -> datetime | None:
    try:
        return parsedate_to_datetime(str(item.get("date_created") or ""))
    except (TypeError, ValueError):
        return None


def lookup_message(
    session: requests.Session,
    *,
    api_base_url: str,
    list_url: str,
    auth: tuple[str, str],
    filters: dict[str, str],
    sender_check: tuple[str, str],
    query: SentQuery,
    timeout: float,
) -> Lookup:
    """``filters``: To (and From); ``sender_check``: the list item field and value that must match (``from`` or
    ``messaging_service_sid``)."""
    params: dict[str, str] | None = {**filters, "PageSize": str(PAGE_SIZE)}
    url = list_url
    candidates: list[Candidate] = []
    field, value = sender_check
    for _ in range(MAX_PAGES):
        try:
            response = session.get(url, params=params, auth=auth, timeout=(3.05, timeout))
        except requests.RequestException as exc:
            return reconcile.unknown(f"Twilio unreachable: {exc.__class__.__name__}")
        if response.status_code != 200:
            retry_after = response.headers.get("Retry-After")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            return reconcile.unknown(f"Twilio Messages list answered HTTP {response.status_code}", wait)
        try:
            page = response.json()
            items = list(page["messages"])
        except (ValueError, KeyError, TypeError):
            return reconcile.unknown("Twilio Messages list answered without a messages array")
        older = False
        for item in items:
            created = _created(item)
            if created is None:
                return reconcile.unknown("a listed message has no readable date_created")
            if created < query.window_start - reconcile.CLOCK_SKEW:
                older = True
                continue
            if str(item.get(field) or "") != value:
                continue
            outbound = str(item.get("direction", "")).startswith("outbound")
            candidates.append(Candidate(str(item.get("sid")), created, str(item.get("body") or ""), outbound))
        next_uri = page.get("next_page_uri")
        if older or not next_uri:
            return reconcile.match(query, candidates)
        parts = urlsplit(str(next_uri))
        url, params = f"{api_base_url.rstrip('/')}{parts.path}?{parts.query}", None
    return reconcile.unknown(f"more than {MAX_PAGES * PAGE_SIZE} messages to this recipient since the send window")
