"""The Twilio emulator's Messages list resource: filters, paging, eventual consistency (issue #13)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from devtools.emulators.twilio import TwilioEmulator
from tests.emulators.test_twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, send

LIST = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def listing(tw: TwilioEmulator, params: dict[str, str] | None = None, url: str | None = None) -> dict[str, Any]:
    response = requests.get(url or tw.url + LIST, params=params, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sids(page: dict[str, Any]) -> list[str]:
    return [m["sid"] for m in page["messages"]]


def _send(tw: TwilioEmulator, to: str, from_: str = "+15005550006", body: str = "hello") -> str:
    response = send(tw, {"To": to, "From": from_, "Body": body})
    assert response.status_code == 201
    return str(response.json()["sid"])


def test_filters_to_and_from_newest_first(tw: TwilioEmulator) -> None:
    first = _send(tw, "+15551230001")
    _send(tw, "+15551230002")
    other_sender = _send(tw, "+15551230001", from_="+15005550007")
    second = _send(tw, "+15551230001")
    assert sids(listing(tw, {"To": "+15551230001", "From": "+15005550006"})) == [second, first]
    assert sids(listing(tw, {"To": "+15551230001"})) == [second, other_sender, first]
    assert len(listing(tw)["messages"]) == 4


def test_paging_follows_next_page_uri_with_page_token(tw: TwilioEmulator) -> None:
    sent = [_send(tw, "+15551230001", body=f"n{i}") for i in range(5)]
    page = listing(tw, {"To": "+15551230001", "PageSize": "2"})
    seen = sids(page)
    assert page["page"] == 0 and page["page_size"] == 2 and page["previous_page_uri"] is None
    while page["next_page_uri"]:
        assert "PageToken=PA" in page["next_page_uri"] and "To=%2B15551230001" in page["next_page_uri"]
        page = listing(tw, url=tw.url + page["next_page_uri"])
        seen += sids(page)
    assert seen == list(reversed(sent))
    assert page["page"] == 2 and page["previous_page_uri"] is not None


def test_bad_paging_parameters_are_twilio_400s(tw: TwilioEmulator) -> None:
    for params in ({"PageSize": "0"}, {"PageSize": "1001"}, {"Page": "x"}, {"PageToken": "PAnope"}):
        response = requests.get(tw.url + LIST, params=params, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
        assert response.status_code == 400 and response.json()["code"] == 20001


def test_date_sent_filters_only_messages_that_left_the_queue(tw: TwilioEmulator) -> None:
    queued = _send(tw, "+15551230001")
    sent = _send(tw, "+15551230001")
    with tw._data_lock:  # what send_status does without posting a webhook
        tw.get_message(sent).date_sent = tw.get_message(sent).date_created  # type: ignore[union-attr]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert sids(listing(tw, {"DateSent": today})) == [sent]
    assert sids(listing(tw, {"DateSent>": today})) == [sent]
    assert sids(listing(tw, {"DateSent<": today})) == [sent]
    assert sids(listing(tw, {"DateSent>": "2999-01-01"})) == []
    assert sids(listing(tw, {"DateSent<": "2000-01-01"})) == []
    assert sids(listing(tw, {"DateSent>": "2000-01-01T00:00:00Z"})) == [sent]
    assert queued in sids(listing(tw))  # without a DateSent filter the queued one is listed too
    response = requests.get(tw.url + LIST, params={"DateSent": "soon"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert response.status_code == 400


def test_a_message_is_listed_only_after_the_lag(tw: TwilioEmulator) -> None:
    tw.list_lag_seconds = 0.6
    sid = _send(tw, "+15551230001")
    assert listing(tw, {"To": "+15551230001"})["messages"] == []
    fetched = requests.get(f"{tw.url}{LIST[:-5]}/{sid}.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert fetched.status_code == 200  # fetching by sid is immediate
    time.sleep(0.7)
    assert sids(listing(tw, {"To": "+15551230001"})) == [sid]


@pytest.mark.parametrize("auth", [None, (ACCOUNT_SID, "wrong")])
def test_the_list_needs_the_account_credentials(tw: TwilioEmulator, auth: tuple[str, str] | None) -> None:
    response = requests.get(tw.url + LIST, auth=auth, timeout=5)
    assert response.status_code == 401
