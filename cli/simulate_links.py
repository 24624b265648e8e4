"""Link tracking in ``channel simulate --link-tracking``: the text carries a link, and some contacts follow the short
link of their text (one twice, one through a link-preview fetcher first), the way a phone would."""

from __future__ import annotations

import re
from collections.abc import Sequence

import requests

from shared.domain.links import ALPHABET, CODE_LENGTH

OFFER_URL = "https://contoso.example/spring-offer?utm_source=sms"
TEXT_WITH_LINK = f"Hi {{{{contact.firstname}}}}, your spring offer is ready: {OFFER_URL} Reply YES!"
PHONE_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
PREVIEW_AGENT = "WhatsApp/2.24.1.0 A"
_SHORT = re.compile(rf"https?://\S+/l/[{ALPHABET}]{{{CODE_LENGTH}}}")


def short_links(bodies: Sequence[str]) -> list[str]:
    """The first short link of each text that has one."""
    return [found.group(0) for body in bodies if (found := _SHORT.search(body))]


def follow(url: str, agent: str = PHONE_AGENT, method: str = "GET") -> int:
    response = requests.request(method, url, headers={"User-Agent": agent}, allow_redirects=False, timeout=10)
    if response.status_code != 302 or response.headers.get("Location") != OFFER_URL:
        raise RuntimeError(f"short link answered {response.status_code}, not a redirect to the offer")
    return response.status_code


def click_some(bodies: Sequence[str], every: int = 2) -> int:
    """Every ``every``-th contact clicks; the first also clicks again and was previewed first. The clicks made."""
    links = short_links(bodies)
    clicked = 0
    for index, url in enumerate(links):
        if index == 0:
            follow(url, PREVIEW_AGENT)  # a preview card: redirected, never counted
            follow(url, method="HEAD")
        if index % every == 0:
            follow(url)
            clicked += 1
            if index == 0:
                follow(url)  # a second click: no second interaction
    return clicked
