"""Link tracking end to end (issue #16): the real activity and short-link functions, the Twilio and Dataverse
emulators and Azurite; clicks arrive over HTTP on the local host's server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from shared import bootstrap
from shared.domain.links import ALPHABET, CODE_LENGTH
from shared.settings import load_settings
from tests.helpers import MESSAGE_ID, MESSAGE_TABLE, ROW_ID, activity_message
from tests.integration.conftest import Channel

TEXT = "Hi {{contact.firstname}}: see https://contoso.example/spring?x=1&y=2. Terms: http://contoso.example/t (ok)"
SHORT = re.compile(rf"(http://127\.0\.0\.1:\d+/api/l/([{ALPHABET}]{{{CODE_LENGTH}}}))")
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.fixture
def tracked(channel: Channel) -> Iterator[Channel]:
    channel.dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Spring", "cr123_body": TEXT})
    env = {**channel.env, "LINK_TRACKING": "true", "LINK_TTL_DAYS": "30"}
    channel.host.environ.update(env)
    service = bootstrap.build_service(load_settings(env), queue=channel.host.queue)
    bootstrap.install(service)
    channel.service = service
    yield channel


def _links(channel: Channel) -> list[tuple[str, str]]:
    return SHORT.findall(channel.twilio.messages[-1].body)


def _get(url: str, agent: str = BROWSER, method: str = "GET") -> requests.Response:
    return requests.request(method, url, headers={"User-Agent": agent}, allow_redirects=False, timeout=10)


def test_sent_text_carries_short_links_and_a_click_records_clicked_once(tracked: Channel) -> None:
    assert tracked.deliver(activity_message())
    body = tracked.twilio.messages[0].body
    links = _links(tracked)
    assert len(links) == 2 and "contoso.example" not in body
    assert body == f"Hi Avery: see {links[0][0]}. Terms: {links[1][0]} (ok)"  # punctuation kept outside the link
    first = _get(links[0][0])
    assert first.status_code == 302 and first.headers["Location"] == "https://contoso.example/spring?x=1&y=2"
    assert first.headers["Cache-Control"] == "no-store"
    assert tracked.response_types() == ["sent", "clicked"]
    clicked = tracked.interactions[-1]
    assert clicked["ResponseType"] == "clicked" and "TriggerKeyword" not in clicked
    again = _get(links[1][0])  # another link of the same text, and the same one again: no new interaction
    assert again.status_code == 302 and again.headers["Location"] == "http://contoso.example/t"
    assert _get(links[0][0]).status_code == 302
    assert tracked.response_types() == ["sent", "clicked"]


def test_previews_redirect_but_record_nothing(tracked: Channel) -> None:
    tracked.deliver(activity_message())
    url = _links(tracked)[0][0]
    head = _get(url, method="HEAD")
    assert head.status_code == 302 and head.headers["Location"].startswith("https://contoso.example/")
    for agent in ("WhatsApp/2.23.20.0 A", "facebookexternalhit/1.1", "Slackbot-LinkExpanding 1.0", "TelegramBot"):
        assert _get(url, agent=agent).status_code == 302
    assert tracked.response_types() == ["sent"]


def test_unknown_expired_and_malformed_codes_are_404_and_record_nothing(tracked: Channel) -> None:
    tracked.deliver(activity_message())
    base = tracked.callback_base
    for path in ("/api/l/" + "2" * CODE_LENGTH, "/api/l/short", "/api/l/%2F%2Fevil.example"):
        answer = _get(base + path)
        assert answer.status_code == 404 and "Location" not in answer.headers
        assert answer.headers["Content-Type"].startswith("text/html") and "Link not found" in answer.text
    code = _links(tracked)[0][1]
    link = tracked.service.deps.records.links.get(code)
    assert link is not None and link.activity_key == ROW_ID
    assert 29 <= (link.expires_at - tracked.service.deps.clock.now()).days <= 30  # LINK_TTL_DAYS
    link.expires_at = tracked.service.deps.clock.now()
    tracked.service.deps.records.links.save(link)
    expired = _get(_links(tracked)[0][0])
    assert expired.status_code == 404 and "expired" in expired.text
    assert tracked.response_types() == ["sent"]


def test_no_open_redirect_whatever_the_request_carries(tracked: Channel) -> None:
    tracked.deliver(activity_message())
    url = _links(tracked)[0][0]
    for suffix in ("?url=https://evil.example", "?next=//evil.example&to=https://evil.example"):
        answer = _get(url + suffix)
        assert answer.headers["Location"] == "https://contoso.example/spring?x=1&y=2"
    answer = requests.get(
        url, headers={"Host": "evil.example", "Referer": "https://evil.example"}, allow_redirects=False, timeout=10
    )
    assert answer.headers["Location"] == "https://contoso.example/spring?x=1&y=2"
    stored = {link.url for code in (c for _, c in _links(tracked)) if (link := _stored(tracked, code))}
    assert stored == {"https://contoso.example/spring?x=1&y=2", "http://contoso.example/t"}


def _stored(channel: Channel, code: str):  # type: ignore[no-untyped-def]
    return channel.service.deps.records.links.get(code)


def test_a_resend_of_the_same_activity_reuses_its_codes(tracked: Channel) -> None:
    tracked.twilio.inject_error("POST", "Messages.json", status=503, code=20500, message="down", times=1)
    assert tracked.deliver(activity_message())  # released by the 503 and rescheduled
    before = tracked.service.deps.records.activity_links.get(ROW_ID)
    assert before is not None and len(before.codes) == 2 and not tracked.twilio.messages
    tracked.host.pump()
    assert len(tracked.twilio.messages) == 1
    assert sorted(before.codes.values()) == sorted(c for _, c in _links(tracked))


def test_link_tracking_off_sends_the_text_unchanged(channel: Channel) -> None:
    channel.dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Spring", "cr123_body": TEXT})
    channel.deliver(activity_message())
    assert "https://contoso.example/spring?x=1&y=2" in channel.twilio.messages[0].body
    assert channel.service.deps.records.activity_links.get(ROW_ID) is None


def test_a_click_reported_later_when_dataverse_is_down(tracked: Channel) -> None:
    tracked.deliver(activity_message())
    tracked.dataverse.inject_error(
        "POST", "CreateInteraction", status=503, code="0x80040216", message="Service unavailable", times=3
    )
    assert _get(_links(tracked)[0][0]).status_code == 302  # the contact is redirected anyway
    assert tracked.response_types() == ["sent"]
    assert len(tracked.host.queue.on("callbacks")) == 1  # a nudge: the callback trigger reports what is due
    assert tracked.host.pump() == 1
    assert tracked.response_types() == ["sent", "clicked"]


def test_real_time_journeys_texts_are_never_rewritten(tracked: Channel) -> None:
    from tests.integration.test_rtj import payload, post

    text = "Your table is booked: https://contoso.example/booking/42"
    status, answer = post(tracked, payload(Message={"text": text}))
    assert status == 200 and answer["Status"] == "Sent"
    assert tracked.twilio.messages[0].body == text  # Journeys tracks its own links
