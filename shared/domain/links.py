"""Link tracking rules (issue #16), as pure functions: finding URLs in a text, rewriting them to short links, short
codes, and which requests are link-preview fetchers.

The rewrite is applied once, to the rendered (personalised) text, before the send request is built
(:func:`shared.app.links.shorten`), so everything downstream (segment counting, the provider) sees the short links.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# No 0/o, 1/l/i: a code read aloud or retyped from a screenshot is not misread.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_LENGTH = 12  # 31^12 ≈ 7.9e17 (59 bits): unguessable at any request rate the app can serve
_CODE = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")

# An http(s) URL runs to the next white space or a character that cannot appear unescaped in a URL.
_URL = re.compile(r"https?://[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
_TRAILING = ".,;:!?'\")]}*"  # sentence punctuation after a URL is not part of it (unless a bracket is balanced)

# Link-preview fetchers: messaging apps and social sites fetch a link to draw a preview card, without a person
# clicking. Matched case-insensitively as substrings of the User-Agent.
PREVIEW_AGENTS = (
    "facebookexternalhit",  # Facebook, Messenger, also Apple iMessage previews
    "facebot",
    "whatsapp",
    "twitterbot",
    "slackbot",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "applebot",
    "googlebot",
    "google-pagerenderer",
    "bingbot",
    "bingpreview",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "viber",
    "snapchat",
    "yahoo! slurp",
    "vkshare",
    "mastodon",
)


@dataclass(frozen=True)
class LinkConfig:
    """Link tracking switched on: short links are ``<base>/l/<code>`` and redirect for ``ttl`` after the send."""

    base: str
    ttl: timedelta


def new_code(choice: Callable[[str], str] = secrets.choice) -> str:
    """A fresh random short code (``secrets``: cryptographically random)."""
    return "".join(choice(ALPHABET) for _ in range(CODE_LENGTH))


def is_code(value: str) -> bool:
    return bool(_CODE.match(value))


def _trim(url: str) -> str:
    while url and url[-1] in _TRAILING:
        closing = url[-1]
        opening = {")": "(", "]": "[", "}": "{"}.get(closing)
        if opening is not None and url.count(opening) >= url.count(closing):
            break  # a balanced bracket belongs to the URL (e.g. a Wikipedia link)
        url = url[:-1]
    return url


def _matches(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _URL.finditer(text):
        url = _trim(match.group(0))
        if "://" in url and url.split("://", 1)[1]:
            found.append((match.start(), match.start() + len(url), url))
    return found


def find_urls(text: str) -> list[str]:
    """Every http(s) URL of ``text``, once each, in order of appearance."""
    return list(dict.fromkeys(url for _, _, url in _matches(text)))


def rewrite(text: str, short_links: Mapping[str, str]) -> str:
    """``text`` with every URL that has a short link replaced by it (other text unchanged, byte for byte)."""
    out: list[str] = []
    position = 0
    for start, end, url in _matches(text):
        replacement = short_links.get(url)
        if replacement is None:
            continue
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)


def short_link(base: str, code: str) -> str:
    return f"{base.rstrip('/')}/l/{code}"


def is_preview(method: str, user_agent: str | None) -> bool:
    """A request that must redirect but never count as a click: any HEAD request (previewers and link checkers
    probe with HEAD; a browser following a link sends GET), or a known link-preview user agent."""
    if method.upper() == "HEAD":
        return True
    agent = (user_agent or "").lower()
    return any(token in agent for token in PREVIEW_AGENTS)


@dataclass
class ShortLink:
    """One short code: where it redirects, for which activity, until when. Keyed by the code."""

    code: str
    activity_key: str
    url: str
    expires_at: datetime
    updated_at: datetime | None = None
    etag: str | None = None

    @property
    def key(self) -> str:
        return self.code

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass
class ActivityLinks:
    """The short codes of one activity, by original URL: a resend of the same activity reuses them (one code per
    activity and URL). Keyed by the activity's record key."""

    activity_key: str
    codes: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None
    etag: str | None = None

    @property
    def key(self) -> str:
        return self.activity_key
