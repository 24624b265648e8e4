"""Link tracking rules (issue #16): URL rewrite, codes, the link-preview rule, the click transition, settings."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain import links, state
from shared.domain.models import ActivityRef, ResponseType
from shared.domain.state import ActivityState, SendStatus
from shared.records.link_codecs import ACTIVITY_LINKS, SHORT_LINKS
from shared.settings import ConfigurationError, Settings, load_settings
from tests.unit.test_settings import BASE

ACTIVITY = ActivityRef("row", "act", "contact", "journey", "iteration", "cr123_smsmessage", "msg")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("Go to https://a.example/x.", ["https://a.example/x"]),
        ("(see https://a.example/x)", ["https://a.example/x"]),
        ("https://en.wikipedia.org/wiki/Foo_(bar) !", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("HTTP://A.EXAMPLE/Q?a=1&b=2, and http://b.example", ["HTTP://A.EXAMPLE/Q?a=1&b=2", "http://b.example"]),
        ("twice https://a.example https://a.example", ["https://a.example"]),
        ("<https://a.example/x>", ["https://a.example/x"]),
        ("no links: www.example.com ftp://x.example mailto:a@b.example https://", []),
    ],
)
def test_find_urls(text: str, urls: list[str]) -> None:
    assert links.find_urls(text) == urls


def test_rewrite_replaces_every_occurrence_and_keeps_the_rest_byte_for_byte() -> None:
    text = "Hi Ada! 50% off: https://a.example/s?x=1. Again https://a.example/s?x=1; other https://b.example/"
    short = {"https://a.example/s?x=1": "https://l.example/l/aaaa", "https://b.example/": "https://l.example/l/bbbb"}
    assert links.rewrite(text, short) == (
        "Hi Ada! 50% off: https://l.example/l/aaaa. Again https://l.example/l/aaaa; other https://l.example/l/bbbb"
    )
    assert links.rewrite(text, {}) == text  # a URL without a short link is left alone
    assert links.rewrite("no links", short) == "no links"


def test_codes_are_random_from_the_unambiguous_alphabet() -> None:
    codes = {links.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == links.CODE_LENGTH >= 8 and links.is_code(c) for c in codes)
    assert not set("01ilo") & set("".join(codes)) and not set(links.ALPHABET) & set("01ilo")
    assert not links.is_code("A" * links.CODE_LENGTH) and not links.is_code("2" * (links.CODE_LENGTH - 1))


@pytest.mark.parametrize(
    ("method", "agent", "preview"),
    [
        ("HEAD", "Mozilla/5.0 (iPhone)", True),
        ("head", None, True),
        ("GET", "WhatsApp/2.23.20.0 A", True),
        ("GET", "facebookexternalhit/1.1 Facebot Twitterbot/1.0", True),
        ("GET", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", True),
        ("GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("GET", "TelegramBot (like TwitterBot)", True),
        ("GET", "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36", False),
        ("GET", None, False),
    ],
)
def test_the_link_preview_rule(method: str, agent: str | None, preview: bool) -> None:
    assert links.is_preview(method, agent) is preview


def test_clicked_once_per_activity_and_only_for_a_text_that_went_out() -> None:
    sent = replace(ActivityState(ACTIVITY, send_status=SendStatus.SENT), recorded=["sent", "delivered"])
    clicked = state.on_click(sent)
    assert clicked is not None and clicked.due == ["clicked"]
    assert state.on_click(replace(clicked, due=[], recorded=[*clicked.recorded, "clicked"])) is None
    assert state.on_click(clicked) is None  # already due
    for status in (SendStatus.SUPPRESSED, SendStatus.CLAIMED):
        assert state.on_click(ActivityState(ACTIVITY, send_status=status)) is None
    uncertain = state.on_click(ActivityState(ACTIVITY, send_status=SendStatus.AMBIGUOUS))
    assert uncertain is not None and uncertain.send_status is SendStatus.SENT and uncertain.due == ["sent", "clicked"]
    assert ResponseType("clicked") is ResponseType.CLICKED


def test_link_codecs_round_trip() -> None:
    link = links.ShortLink("abcdefghjkmn", "row", "https://a.example/?q=1", NOW + timedelta(days=90), NOW)
    decoded = SHORT_LINKS.decode(json.loads(json.dumps(SHORT_LINKS.encode(link))), "W/1")
    assert decoded == replace(link, etag="W/1") and decoded.key == "abcdefghjkmn"
    assert decoded.expired(NOW + timedelta(days=90)) and not decoded.expired(NOW)
    group = links.ActivityLinks("row", {"https://a.example/?q=1": "abcdefghjkmn"})
    assert ACTIVITY_LINKS.decode(ACTIVITY_LINKS.encode(group), "W/2") == replace(group, etag="W/2")
    assert SHORT_LINKS.row != ACTIVITY_LINKS.row and "activity" not in (SHORT_LINKS.row, ACTIVITY_LINKS.row)


def test_link_settings_defaults_and_their_base() -> None:
    s = load_settings(BASE)
    assert (s.link_tracking, s.link_base_url, s.link_ttl_days) == (False, None, 90)
    assert s.short_link_base(s.callback_base_url) == "https://myapp.azurewebsites.net/api"  # the app's own /api/l
    custom = load_settings(
        {**BASE, "LINK_TRACKING": "true", "LINK_BASE_URL": "https://sms.contoso.com/", "LINK_TTL_DAYS": "7"}
    )
    assert custom.link_tracking and custom.short_link_base(custom.callback_base_url) == "https://sms.contoso.com"
    assert custom.link_ttl == timedelta(days=7)
    blank = load_settings({**BASE, "LINK_TRACKING": "", "LINK_BASE_URL": " ", "LINK_TTL_DAYS": ""})
    assert (blank.link_tracking, blank.link_base_url, blank.link_ttl_days) == (False, None, 90)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LINK_TRACKING", "perhaps", "LINK_TRACKING"),
        ("LINK_TTL_DAYS", "0", "LINK_TTL_DAYS"),
        ("LINK_BASE_URL", "http://sms.contoso.com", "https"),
        ("LINK_BASE_URL", "https://sms.contoso.com/?u=1", "no query"),
        ("LINK_BASE_URL", "sms.contoso.com", "absolute URL"),
    ],
)
def test_bad_link_settings_name_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({**BASE, name: value})


def test_link_settings_compose_with_pydantic_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**BASE, "LINK_TRACKING": "1", "LINK_TTL_DAYS": "14"}.items():
        monkeypatch.setenv(key, value)
    s = Settings()  # type: ignore[call-arg]
    assert s.link_tracking is True and s.link_ttl_days == 14 and s.twilio_from == "+14155550100"


def _deps(**links_config: object):  # type: ignore[no-untyped-def]
    from shared.adapters.memory import MemoryQueue, MemoryStore
    from shared.app.deps import build_deps
    from tests.fakes import FakeClock, FakeDataverse, FakeProvider, config

    cfg = config(links=links.LinkConfig("https://sms.contoso.com", timedelta(days=90)), **links_config)
    return build_deps(cfg, FakeDataverse(), FakeProvider(), MemoryStore(), MemoryQueue(), FakeClock())


def test_shorten_reuses_an_activitys_codes_and_adds_new_urls() -> None:
    from shared.app.links import shorten

    deps = _deps()
    first = shorten(deps, "row-1", "See https://a.example/x and https://a.example/x.")
    code = first.split("/l/")[1][: links.CODE_LENGTH]
    assert first == f"See https://sms.contoso.com/l/{code} and https://sms.contoso.com/l/{code}."
    again = shorten(deps, "row-1", "See https://a.example/x, then https://b.example/")
    assert again.startswith(f"See https://sms.contoso.com/l/{code}, then https://sms.contoso.com/l/")
    stored = deps.records.activity_links.get("row-1")
    assert stored is not None and set(stored.codes) == {"https://a.example/x", "https://b.example/"}
    other = shorten(deps, "row-2", "See https://a.example/x")
    assert code not in other  # one code per activity and URL
    link = deps.records.links.get(code)
    assert link is not None and link.expires_at == deps.clock.now() + timedelta(days=90)
    assert shorten(deps, "row-3", "no links here") == "no links here"
    assert deps.records.activity_links.get("row-3") is None


def test_shorten_is_a_no_op_when_link_tracking_is_off() -> None:
    from shared.app.links import shorten

    deps = _deps()
    off = replace(deps, config=replace(deps.config, links=None))
    assert shorten(off, "row-1", "See https://a.example/x") == "See https://a.example/x"
    assert off.records.activity_links.get("row-1") is None
