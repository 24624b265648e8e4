from __future__ import annotations

import json

import pytest

from shared.domain.context import parse_activity_message, parse_wcf_date
from shared.domain.errors import PoisonMessage
from tests.helpers import (
    ACTIVITY_ID,
    CONTACT_ID,
    ITERATION_ID,
    JOURNEY_ID,
    MESSAGE_ID,
    MESSAGE_TABLE,
    ROW_ID,
    fixture_bytes,
)

JSON = "application/json"


def test_parses_the_real_format_create_message() -> None:
    parsed = parse_activity_message(fixture_bytes("dataverse", "activity_create.json"), JSON)
    assert parsed.trimmed is False
    activity = parsed.activity
    assert activity is not None
    assert activity.row_id == ROW_ID
    assert activity.activity_id == ACTIVITY_ID
    assert activity.contact_id == CONTACT_ID
    assert activity.journey_id == JOURNEY_ID
    assert activity.iteration_id == ITERATION_ID
    assert activity.entity_type == MESSAGE_TABLE
    assert activity.entity_id == MESSAGE_ID
    assert parsed.organization_id == "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b"
    assert parsed.operation_created_on is not None and parsed.operation_created_on.year == 2024


def test_trimmed_message_asks_for_a_row_read() -> None:
    parsed = parse_activity_message(fixture_bytes("dataverse", "activity_create_trimmed.json"), JSON)
    assert parsed.trimmed is True
    assert parsed.activity is None
    assert parsed.row_id == ROW_ID


def test_utf8_bom_is_accepted() -> None:
    body = b"\xef\xbb\xbf" + fixture_bytes("dataverse", "activity_create.json")
    assert parse_activity_message(body, JSON).activity is not None


def test_post_image_fills_gaps_in_target() -> None:
    document = json.loads(fixture_bytes("dataverse", "activity_create.json"))
    attributes = document["InputParameters"][0]["value"]["Attributes"]
    contact = next(a for a in attributes if a["key"] == "msdyncrm_contact")
    attributes.remove(contact)
    document["PostEntityImages"][0]["value"]["Attributes"].append(contact)
    parsed = parse_activity_message(json.dumps(document).encode(), JSON)
    assert parsed.activity is not None and parsed.activity.contact_id == CONTACT_ID


@pytest.mark.parametrize(
    ("body", "content_type", "reason", "words"),
    [
        (b"not json at all", JSON, "invalid_json", "not JSON"),
        (b"", JSON, "empty_body", "empty"),
        (b"[1, 2]", JSON, "invalid_json", "RemoteExecutionContext"),
        (fixture_bytes("dataverse", "activity_create.xml"), "application/xml", "xml_format", "message format JSON"),
        (fixture_bytes("dataverse", "activity_create.xml"), None, "xml_format", "message format JSON"),
        (fixture_bytes("dataverse", "activity_create.msbin1"), "application/msbin1", "binary_format", "JSON"),
        (fixture_bytes("dataverse", "activity_create.msbin1"), None, "binary_format", "message format JSON"),
        (fixture_bytes("dataverse", "activity_update.json"), JSON, "unexpected_message", "Create"),
        (fixture_bytes("dataverse", "contact_create.json"), JSON, "unexpected_entity", "contact"),
        (fixture_bytes("dataverse", "activity_missing_contact.json"), JSON, "missing_attribute", "msdyncrm_contact"),
        (fixture_bytes("dataverse", "activity_bad_entityid.json"), JSON, "invalid_id", "msdyncrm_entityid"),
    ],
)
def test_bad_input_is_poison_with_a_specific_reason(
    body: bytes, content_type: str | None, reason: str, words: str
) -> None:
    with pytest.raises(PoisonMessage) as caught:
        parse_activity_message(body, content_type)
    assert caught.value.reason == reason
    assert words in caught.value.detail


def test_non_guid_primary_entity_id() -> None:
    document = json.loads(fixture_bytes("dataverse", "activity_create.json"))
    document["PrimaryEntityId"] = "12345"
    with pytest.raises(PoisonMessage, match="PrimaryEntityId"):
        parse_activity_message(json.dumps(document).encode(), JSON)


def test_non_guid_lookup_id() -> None:
    document = json.loads(fixture_bytes("dataverse", "activity_create.json"))
    for attribute in document["InputParameters"][0]["value"]["Attributes"]:
        if attribute["key"] == "msdyncrm_customerjourney":
            attribute["value"]["Id"] = "journey-1"
    with pytest.raises(PoisonMessage) as caught:
        parse_activity_message(json.dumps(document).encode(), JSON)
    assert caught.value.reason == "invalid_id"


def test_service_bus_claims_must_agree() -> None:
    body = fixture_bytes("dataverse", "activity_create.json")
    claims = {"http://schemas.microsoft.com/xrm/2011/Claims/RequestName": "Update"}
    with pytest.raises(PoisonMessage) as caught:
        parse_activity_message(body, JSON, claims)
    assert caught.value.reason == "unexpected_message"


def test_wcf_dates() -> None:
    assert parse_wcf_date("/Date(0)/").isoformat() == "1970-01-01T00:00:00+00:00"  # type: ignore[union-attr]
    assert parse_wcf_date("/Date(1506409448000-0700)/") is not None
    assert parse_wcf_date("yesterday") is None
