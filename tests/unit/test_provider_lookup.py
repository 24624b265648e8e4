"""Provider lookups for reconciliation (issue #13) against the loopback emulators: Twilio's Messages list (filters,
paging, messaging services, lag, trouble → unknown) and ACS's repeatable replay (stable id, window, 412)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from devtools.emulators.acs import AcsEmulator
from devtools.emulators.twilio import TwilioEmulator
from shared.domain import reconcile
from shared.domain.errors import SendFailedTransient
from shared.domain.models import SendRequest
from shared.domain.reconcile import SentQuery
from shared.providers import twilio_lookup
from shared.providers.acs import AcsProvider
from shared.providers.twilio import TwilioProvider
from tests.emulators.test_twilio_emulator import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import ROW_ID
from tests.unit.test_acs_provider import provider as acs_provider

SENDER = "+15005550006"
PHONE = "+15551230001"
MG = "MG" + "abcdef0123456789" * 2


@pytest.fixture
def tw() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(ACCOUNT_SID, AUTH_TOKEN) as emulator:
        yield emulator


@pytest.fixture
def acs() -> Iterator[AcsEmulator]:
    with AcsEmulator() as emulator:
        yield emulator


def twilio(tw: TwilioEmulator, **overrides: Any) -> TwilioProvider:
    options: dict[str, Any] = dict(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sender=SENDER,
        messaging_service_sid=None,
        api_base_url=tw.url,
        callback_url="https://app.example/api/callbacks/twilio",
        session=requests.Session(),
        timeout=2.0,
    )
    options.update(overrides)
    return TwilioProvider(**options)


def request(body: str = "Hi Avery", to: str = PHONE, first_sent: datetime | None = None) -> SendRequest:
    url = f"https://app.example/api/callbacks/twilio?activity={ROW_ID}"
    return SendRequest(to, body, ROW_ID, url, ROW_ID, first_sent=first_sent)


def query(body: str = "Hi Avery", **overrides: Any) -> SentQuery:
    now = datetime.now(UTC)
    values: dict[str, Any] = dict(
        to=PHONE,
        body=body,
        sender=None,
        window_start=now - timedelta(seconds=30),
        window_end=now + timedelta(seconds=30),
        first_sent=now - timedelta(seconds=30),
        asked_at=now,
    )
    values.update(overrides)
    return SentQuery(**values)


# --- Twilio -----------------------------------------------------------------------------------------
def test_twilio_finds_the_one_message_with_our_text(tw: TwilioEmulator) -> None:
    provider = twilio(tw)
    ours = provider.send(request()).provider_message_id
    provider.send(request(body="another text"))
    provider.send(request(to="+15551230002"))
    found = provider.lookup(query())
    assert (found.kind, found.message_id) == ("found", ours)
    [listed] = [r for r in tw.requests if r.method == "GET"]
    assert "To=%2B15551230001" in listed.target and "From=%2B15005550006" in listed.target


def test_twilio_absent_when_nothing_was_sent_to_the_number_in_the_window(tw: TwilioEmulator) -> None:
    twilio(tw).send(request(to="+15551230999"))  # another contact
    assert twilio(tw).lookup(query()).kind == "absent"


def test_twilio_another_text_to_the_number_in_the_window_cannot_prove_absence(tw: TwilioEmulator) -> None:
    twilio(tw).send(request(body="another text"))  # e.g. a template Twilio rendered: it may be ours
    assert twilio(tw).lookup(query()).kind == "unknown"


def test_twilio_two_identical_texts_are_unknown_unless_one_is_attributed(tw: TwilioEmulator) -> None:
    provider = twilio(tw)
    first = provider.send(request()).provider_message_id
    second = provider.send(request()).provider_message_id
    assert provider.lookup(query()).kind == "unknown"
    found = provider.lookup(query(attributed=lambda sid: sid == first))
    assert (found.kind, found.message_id) == ("found", second)


def test_twilio_follows_pages_until_it_finds_ours(tw: TwilioEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = twilio(tw)
    ours = provider.send(request()).provider_message_id
    for n in range(5):
        provider.send(request(body=f"later {n}"))
    monkeypatch.setattr(twilio_lookup, "PAGE_SIZE", 2)
    found = provider.lookup(query())
    assert (found.kind, found.message_id) == ("found", ours)
    assert len([r for r in tw.requests if r.method == "GET"]) == 3


def test_twilio_stops_paging_at_messages_older_than_the_window(
    tw: TwilioEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = twilio(tw)
    for n in range(4):
        provider.send(request(body=f"old {n}"))
    monkeypatch.setattr(twilio_lookup, "PAGE_SIZE", 2)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert provider.lookup(query(window_start=future, window_end=future)).kind == "absent"
    assert len([r for r in tw.requests if r.method == "GET"]) == 1


def test_twilio_with_a_messaging_service_matches_the_service(tw: TwilioEmulator) -> None:
    provider = twilio(tw, sender=None, messaging_service_sid=MG)
    ours = provider.send(request()).provider_message_id
    twilio(tw).send(request())  # same text from the plain number: not the service's
    found = provider.lookup(query())
    assert (found.kind, found.message_id) == ("found", ours)
    [listed] = [r for r in tw.requests if r.method == "GET"]
    assert "From=" not in listed.target


def test_twilio_whatsapp_lookups_use_the_channel_prefix(tw: TwilioEmulator) -> None:
    provider = twilio(tw, sender="whatsapp:" + SENDER)
    ours = provider.send(request()).provider_message_id
    assert provider.lookup(query()).message_id == ours


def test_a_message_not_listed_yet_is_absent_which_is_why_we_wait(tw: TwilioEmulator) -> None:
    tw.list_lag_seconds = 30
    provider = twilio(tw)
    provider.send(request())
    assert provider.lookup(query()).kind == "absent"  # RECONCILE_AFTER_SECONDS must outlast the listing lag


@pytest.mark.parametrize(("status", "retry_after"), [(429, 30.0), (503, None), (401, None)])
def test_twilio_trouble_is_unknown(tw: TwilioEmulator, status: int, retry_after: float | None) -> None:
    headers = {"Retry-After": "30"} if retry_after else None
    tw.inject_error("GET", r"Messages\.json", status=status, code=20000 + status, message="-", headers=headers)
    result = twilio(tw).lookup(query())
    assert result.kind == "unknown" and str(status) in result.detail and result.retry_after == retry_after


def test_twilio_unreachable_is_unknown(tw: TwilioEmulator) -> None:
    provider = twilio(tw, api_base_url="http://127.0.0.1:9")
    assert provider.lookup(query()).kind == "unknown"


def test_twilio_too_many_pages_is_unknown(tw: TwilioEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = twilio(tw)
    for n in range(5):
        provider.send(request(body=f"n{n}"))
    monkeypatch.setattr(twilio_lookup, "PAGE_SIZE", 1)
    monkeypatch.setattr(twilio_lookup, "MAX_PAGES", 2)
    assert provider.lookup(query()).kind == "unknown"


# --- ACS --------------------------------------------------------------------------------------------
def test_acs_attempts_of_one_series_carry_one_repeatability_id(acs: AcsEmulator) -> None:
    first_sent = datetime.now(UTC) - timedelta(seconds=20)
    provider = acs_provider(acs)
    one = provider.send(request(first_sent=first_sent)).provider_message_id
    two = provider.send(request(first_sent=first_sent)).provider_message_id  # a resend: answered from the record
    assert one == two and len(acs.messages) == 1 and acs.repeatability.replays == 1
    [message] = acs.messages
    assert message.repeatability_request_id == reconcile.repeatability_id(ROW_ID, first_sent)
    assert message.repeatability_first_sent == format_datetime(first_sent, usegmt=True)
    bodies = [json.loads(r.body)["smsRecipients"][0] for r in acs.requests]
    assert bodies[0] == bodies[1]


def test_acs_a_new_series_is_a_new_request(acs: AcsEmulator) -> None:
    provider = acs_provider(acs)
    now = datetime.now(UTC)
    provider.send(request(first_sent=now - timedelta(seconds=30)))
    provider.send(request(first_sent=now))
    assert len(acs.messages) == 2


def test_acs_a_replay_outside_the_window_is_ambiguous_not_a_new_sms(acs: AcsEmulator) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=6)
    with pytest.raises(SendFailedTransient) as error:
        acs_provider(acs).send(request(first_sent=stale))
    assert error.value.retry_safe is False and "412" in error.value.detail
    assert acs.messages == []


def test_acs_lookup_answers_replay_inside_its_window_and_unknown_outside() -> None:
    # the lookup needs no request: it decides from the times alone (the replay is the send itself)
    acs = AcsProvider(
        endpoint="https://x.communication.azure.com", sender="+1", eventgrid_secret="s" * 20, access_key="a"
    )
    now = datetime.now(UTC)
    assert acs.lookup(query(first_sent=now - timedelta(minutes=1), asked_at=now)).kind == "replay"
    assert acs.lookup(query(first_sent=now - timedelta(minutes=4, seconds=30), asked_at=now)).kind == "unknown"
    assert acs.lookup(replace(query(), first_sent=None)).kind == "unknown"
    assert acs.replay_window == timedelta(minutes=5)


def test_acs_a_failure_after_a_replay_is_ambiguous_not_retry_safe(acs: AcsEmulator) -> None:
    """Regression (found by the ACS fault run): the first request is taken but its answer is lost, the replay gets a
    500. Before, the SDK's in-call retry surfaced only the 500, mapped as retry-safe: a new series and a second SMS."""

    class AnswerLostThen500(requests.Session):
        calls = 0

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            self.calls += 1
            if self.calls == 1:
                super().request(method, url, *args, **kwargs)  # ACS takes it ...
                raise requests.ReadTimeout("injected: the answer is lost")  # ... and the answer is lost
            acs.inject("POST", r"^/sms", status=500, body={"error": {"code": "InternalError", "message": "-"}})
            return super().request(method, url, *args, **kwargs)

    session = AnswerLostThen500()
    with pytest.raises(SendFailedTransient) as error:
        acs_provider(acs, session=session).send(request(first_sent=datetime.now(UTC)))
    assert error.value.retry_safe is False and session.calls == 2
    assert len(acs.messages) == 1
