"""WhatsApp templates on the message record (issue #17): parsing, rendering, the activity path, Twilio's form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.domain.keywords import classify_reply
from shared.domain.models import SendRequest
from shared.domain.whatsapp import (
    RichContent,
    TemplateColumns,
    TemplateMessage,
    TemplateProblem,
    button_keyword,
    media_url,
    parse_variables,
    render,
    reply_for,
    spec_from_row,
)
from shared.ports import QueueMessage
from shared.providers.twilio import _content
from tests.fakes import World, world
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE, activity_message

COLUMNS = TemplateColumns("cr123_template", "cr123_language", "cr123_variables", "cr123_media")
CONTENT_SID = "HX" + "a" * 32


def test_variables_are_ordered_by_number_and_rendered_from_the_contact() -> None:
    spec = spec_from_row(
        {
            "cr123_template": " spring_offer ",
            "cr123_language": "en_US",
            "cr123_variables": '{"2": "20%", "1": "{{contact.firstname}}"}',
        },
        COLUMNS,
    )
    assert spec is not None and spec.name == "spring_offer" and spec.language == "en_US"
    message = render(spec, {"firstname": "Avery"})
    assert message.variables == (("1", "Avery"), ("2", "20%"))
    assert message.positional
    assert json.loads(message.variables_json()) == {"1": "Avery", "2": "20%"}


def test_no_template_column_value_means_the_body_as_today() -> None:
    assert spec_from_row({"cr123_template": None}, COLUMNS) is None
    assert spec_from_row({"cr123_template": "x"}, TemplateColumns()) is None


@pytest.mark.parametrize(
    ("variables", "values", "reason"),
    [
        ('{"1": "{{contact.firstname}}"}', {"firstname": ""}, "renders empty"),
        ('{"1": "Hi {{first}}"}', {}, "unknown placeholder"),
        ('{"1": "Hi {{contact.firstname}"}', {"firstname": "A"}, None),  # not a placeholder at all: sent as typed
    ],
)
def test_a_template_is_never_sent_with_a_hole(variables: str, values: dict[str, str], reason: str | None) -> None:
    spec = spec_from_row({"cr123_template": "t", "cr123_variables": variables}, COLUMNS)
    assert spec is not None
    if reason is None:
        assert render(spec, values).variables == (("1", "Hi {{contact.firstname}"),)
        return
    with pytest.raises(TemplateProblem, match=reason):
        render(spec, values)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"1": {"a": 1}}', "must be a text"),
        ('{"a b": "x"}', "not a number or a simple name"),
        ('{"1": true}', "must be a text"),
    ],
)
def test_variables_that_do_not_parse_are_a_problem(raw: str, reason: str) -> None:
    with pytest.raises(TemplateProblem, match=reason):
        parse_variables(raw)


def test_media_url_must_be_public_https() -> None:
    assert media_url(" https://cdn.example/offer.jpg ") == "https://cdn.example/offer.jpg"
    for bad in ("http://cdn.example/a.jpg", "file:///etc/passwd", "https://"):
        with pytest.raises(TemplateProblem):
            media_url(bad)


def test_button_payload_is_the_keyword_and_an_opt_out_records_stop() -> None:
    typed = classify_reply("Yes, book me in", {"stop"})
    assert reply_for(typed, button_keyword(" BOOK_YES "), False).keyword == "book_yes"
    assert reply_for(typed, None, False).keyword == "yes"
    opted = reply_for(typed, "unsubscribe", True)
    assert opted.keyword == "stop" and opted.opt_out


# --- Twilio's form -----------------------------------------------------------------------------------------------
def _request(content: RichContent | None) -> SendRequest:
    return SendRequest("+447700900123", "Hi", "row", "https://cb", "row", content=content)


def test_twilio_sends_a_template_as_content_sid_and_variables() -> None:
    template = TemplateMessage(CONTENT_SID, None, (("1", "Avery"), ("2", "20%")))
    form = _content(_request(RichContent(template=template)))
    assert form == {"ContentSid": CONTENT_SID, "ContentVariables": '{"1":"Avery","2":"20%"}'}


def test_twilio_sends_media_with_the_body_and_refuses_a_non_content_sid() -> None:
    assert _content(_request(RichContent(media_url="https://cdn.example/a.jpg"))) == {
        "Body": "Hi",
        "MediaUrl": "https://cdn.example/a.jpg",
    }
    assert _content(_request(None)) == {"Body": "Hi"}
    from shared.domain.errors import SendRejected

    with pytest.raises(SendRejected, match="Content SID"):
        _content(_request(RichContent(template=TemplateMessage("spring_offer", "en_US", ()))))


# --- the activity path -------------------------------------------------------------------------------------------
def _world(message: dict[str, Any], contact: dict[str, Any] | None = None) -> World:
    built = world(template_columns=COLUMNS)
    built.dataverse.rows[(MESSAGE_TABLE, MESSAGE_ID)] = {"cr123_body": "", **message}
    built.dataverse.rows[("contact", CONTACT_ID)].update(contact or {})
    return built


def _deliver(w: World) -> str:
    message = QueueMessage("activities", activity_message(), "m1", "application/json")
    return w.service.handle_activity_message(message).result


def test_a_template_row_sends_the_rendered_template_with_one_message_read() -> None:
    w = _world({"cr123_template": CONTENT_SID, "cr123_variables": '{"1": "{{contact.firstname}}"}'})
    assert _deliver(w) == "sent"
    [request] = w.provider.sent
    assert request.content is not None and request.content.template is not None
    assert request.content.template.variables == (("1", "Avery"),)
    assert w.dataverse.response_types() == ["sent"]
    assert w.dataverse.reads == 2  # the message row (body and template columns together) and the contact


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"cr123_template": "t", "cr123_variables": '{"1": "{{contact.nickname}}"}'}, "renders empty"),
        ({"cr123_template": "t", "cr123_variables": "{oops"}, "not valid JSON"),
        ({"cr123_template": "t", "cr123_variables": '{"1": "{{coupon}}"}'}, "unknown placeholder"),
        ({"cr123_body": "Hi", "cr123_media": "http://insecure.example/a.jpg"}, "https"),
    ],
)
def test_a_template_problem_fails_the_activity_and_sends_nothing(message: dict[str, Any], reason: str) -> None:
    w = _world(message)
    assert _deliver(w) == "failed"
    assert w.provider.sent == []
    assert w.dataverse.response_types() == ["failed"]
    record = w.repo.get(w.dataverse.interactions[0][0].row_id)
    assert record is not None and reason in str(record.last_error)
