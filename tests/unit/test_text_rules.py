from __future__ import annotations

import pytest

from shared.domain import template
from shared.domain.keywords import classify_reply
from shared.domain.phone import normalize_e164
from shared.settings import DEFAULT_OPT_OUT_KEYWORDS

OPT_OUT = frozenset(DEFAULT_OPT_OUT_KEYWORDS)


def test_template_renders_contact_values_and_blanks() -> None:
    text = "Hi {{contact.firstname}}, {{ contact.LastName }}! Code {{contact.cr1_code}}"
    assert template.contact_columns(text) == ["firstname", "lastname", "cr1_code"]
    rendered = template.render(text, {"firstname": "Avery", "lastname": None})
    assert rendered == "Hi Avery, ! Code "


def test_template_never_leaves_a_raw_placeholder() -> None:
    text = "A {{unknown}} B {{contact.}} C {{ contact.firstname }} {{"
    rendered = template.render(text, {"firstname": "Z"})
    assert "{{unknown}}" not in rendered and "{{contact.}}" not in rendered
    assert rendered.startswith("A  B  C Z")
    assert template.unknown_placeholders(text) == 2


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+44 7700 900123", None, "+447700900123"),
        ("0044 (7700) 900-123", None, "+447700900123"),
        ("07700 900123", "44", "+447700900123"),
        ("07700 900123", None, None),
        ("(415) 555-0100", "1", "+14155550100"),
        ("+1 415 555 0100 ext 3", None, None),
        ("12345", None, None),
        ("", None, None),
        (None, None, None),
        ("+0123456789", None, None),
    ],
)
def test_phone_normalisation(raw: str | None, country: str | None, expected: str | None) -> None:
    assert normalize_e164(raw, country) == expected


@pytest.mark.parametrize(
    ("text", "keyword", "opt_out"),
    [
        ("STOP", "stop", True),
        ("  stop. ", "stop", True),
        ("Unsubscribe", "stop", True),
        ("QUIT please", "stop", True),
        ("stopall", "stop", True),
        ("Yes!", "yes", False),
        ("Interested, call me", "interested", False),
        ("¿Sí?", "sí", False),
        ("!!!", "", False),
        ("", "", False),
    ],
)
def test_reply_classification(text: str, keyword: str, opt_out: bool) -> None:
    reply = classify_reply(text, OPT_OUT)
    assert (reply.keyword, reply.opt_out) == (keyword, opt_out)


def test_the_whatsapp_prefix_is_stripped_in_one_place() -> None:
    from shared.domain.phone import as_whatsapp, is_whatsapp, strip_channel_prefix

    assert is_whatsapp("whatsapp:+1") and not is_whatsapp("+1") and not is_whatsapp(None)
    assert as_whatsapp("+447700900123") == as_whatsapp("whatsapp:+447700900123") == "whatsapp:+447700900123"
    assert strip_channel_prefix("whatsapp:+447700900123") == "+447700900123"
    assert strip_channel_prefix("+447700900123") == "+447700900123"
    assert strip_channel_prefix("WhatsApp:+1") == "WhatsApp:+1"  # providers write it lower-case only
