"""Fuzzing the short-link route ``GET|HEAD /api/l/{code}`` (issue #16) through the function app: whatever the code,
query, method and headers, the answer is a 302 to a URL the app stored or a 404, never a 5xx, never a redirect
anywhere else (no open redirect)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from hypothesis import example, given
from hypothesis import strategies as st

from devtools.host import LocalHost
from shared.domain.links import ALPHABET, CODE_LENGTH, ShortLink
from shared.service import ChannelService
from tests.fuzz.conftest import FUZZ

HOST = LocalHost()
KNOWN = "abcdefghjkmn"
TARGET = "https://contoso.example/offer?x=1"
codes = st.one_of(
    st.just(KNOWN),
    st.text(alphabet=ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH),
    st.text(max_size=40),
)


@FUZZ
@given(
    code=codes,
    query=st.text(max_size=60),
    method=st.sampled_from(["GET", "HEAD"]),
    agent=st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["WhatsApp/2.0", "Mozilla/5.0"])),
)
@example(code=KNOWN, query="url=https://evil.example", method="GET", agent=None)
@example(code="..%2F..%2Fevil", query="", method="GET", agent=None)
def test_short_link_route_redirects_only_to_stored_urls(
    installed_service: ChannelService, code: str, query: str, method: str, agent: str | None
) -> None:
    links = installed_service.deps.records.links
    if links.get(KNOWN) is None:
        expires = installed_service.deps.clock.now() + timedelta(days=1)
        links.insert(ShortLink(KNOWN, "0f6e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c", TARGET, expires))
    headers = {} if agent is None else {"User-Agent": agent}
    url = f"https://fuzz.example.net/api/l/{quote(code, safe='')}?{quote(query, safe='=&')}"
    response = HOST.call_http(method, url, headers=headers)
    assert response.status_code in (302, 404), response.get_body()[:200]
    if response.status_code == 302:
        assert code == KNOWN and response.headers["Location"] == TARGET
