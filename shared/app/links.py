"""Use cases of link tracking (issue #16): shorten the links of a text before it is sent, and follow a short link.

:func:`shorten` is the one place the rendered text is rewritten (outbound marketing only: real-time journeys track
links themselves). Codes are stored before the text can reach anyone, one per activity and URL: a resend of the
same activity reuses them. :func:`follow` answers ``GET/HEAD /api/l/{code}``: a 302 to the URL the code was created
for (never anywhere else: no open redirect), a ``clicked`` interaction once per activity, nothing for link-preview
fetchers, a plain 404 page for an unknown or expired code.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime

from shared.app.callbacks import enqueue
from shared.app.deps import Deps
from shared.app.message import activity_ids
from shared.app.outbox import Outbox
from shared.domain import links as rules
from shared.domain import state as machine
from shared.domain.errors import DataverseError, TransientError
from shared.domain.links import ActivityLinks, ShortLink
from shared.domain.models import HttpReply, InboundHttpRequest, StatusEvent, StatusKind
from shared.domain.state import ActivityState
from shared.log import log_event
from shared.ports import Conflict

_NOT_FOUND_PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Link not found</title></head>"
    "<body><h1>Link not found</h1><p>{}</p></body></html>"
)


def shorten(deps: Deps, key: str, text: str) -> str:
    """``text`` with every http(s) URL replaced by its short link (unchanged when link tracking is off)."""
    config = deps.config.links
    if config is None:
        return text
    urls = rules.find_urls(text)
    if not urls:
        return text
    store = deps.records.activity_links
    known = store.get(key)
    codes = dict(known.codes) if known is not None else {}
    expires_at = deps.clock.now() + config.ttl
    for url in urls:
        if url not in codes:
            codes[url] = _new_link(deps, key, url, expires_at).code
    if known is None:
        store.insert(ActivityLinks(key, codes))
    elif codes != known.codes:
        store.save(ActivityLinks(key, codes, etag=known.etag))
    log_event("link.shortened", activity_row=key, links=len(urls))
    return rules.rewrite(text, {url: rules.short_link(config.base, codes[url]) for url in urls})


def _new_link(deps: Deps, key: str, url: str, expires_at: datetime) -> ShortLink:
    for _ in range(5):  # a collision of 59-bit random codes is practically impossible; retried all the same
        try:
            return deps.records.links.insert(ShortLink(rules.new_code(), key, url, expires_at))
        except Conflict:
            continue
    raise Conflict("could not find a free short code")


def not_found(reason: str) -> HttpReply:
    page = _NOT_FOUND_PAGE.format(html.escape(reason)).encode()
    return HttpReply(404, page, "text/html", {"Cache-Control": "no-store"})


def _redirect(url: str) -> HttpReply:
    headers = {"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HttpReply(302, b"", "text/plain", headers)


def follow(deps: Deps, code: str, request: InboundHttpRequest) -> HttpReply:
    if not rules.is_code(code):
        log_event("link.unknown", reason="malformed")
        return not_found("This link is not valid.")
    link = deps.records.links.get(code)
    if link is None:
        log_event("link.unknown", reason="unknown")
        return not_found("This link is not valid.")
    if link.expired(deps.clock.now()):
        log_event("link.expired", activity_row=link.activity_key)
        return not_found("This link has expired.")
    if rules.is_preview(request.method, request.header("user-agent")):
        log_event("link.preview", method=request.method.upper(), activity_row=link.activity_key)
        return _redirect(link.url)
    _record_click(deps, link)
    return _redirect(link.url)


def _record_click(deps: Deps, link: ShortLink) -> None:
    """``clicked`` due and reported now; repeat clicks change nothing. If Dataverse can't take it now, a nudge on the
    callback queue reports it later (the item stays due in the record meanwhile)."""
    outbox = Outbox(deps)
    changed: list[bool] = []

    def clicked(s: ActivityState) -> ActivityState | None:
        moved = machine.on_click(s)
        changed[:] = [moved is not None]
        return None if moved is None else outbox.hold(moved)

    try:
        record = deps.records.activities.mutate(link.activity_key, clicked)
    except KeyError:
        log_event("link.click_orphan", logging.WARNING, activity_row=link.activity_key)
        return
    ids = activity_ids(record.activity)
    first = bool(changed and changed[0])
    log_event("link.clicked", first=first, provider_message_id=record.provider_message_id, **ids)
    if not record.due:
        return
    outbox.add(record)
    failure = outbox.report().get(record.key)
    if failure is not None:
        _nudge(deps, record, failure)


def _nudge(deps: Deps, record: ActivityState, failure: Exception) -> None:
    """Queue a no-op status event for the activity: the callback queue's trigger re-reads the record and reports
    what is due (the click), with its retries and poison handling."""
    event = StatusEvent(
        provider_message_id=record.provider_message_id or "",
        kind=StatusKind.SENT,
        raw_status="clicked",
        activity_hint=record.key,
    )
    try:
        enqueue(deps, record.provider or deps.provider.name, [event], reason=str(failure))
    except (TransientError, DataverseError, OSError) as error:  # the click stays due in the record
        log_event("link.click_deferred", logging.WARNING, reason=str(error), activity_row=record.key)
