"""The one definition: tile, table and app settings agree; response types equal the domain's."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from provisioning.definition import RESPONSE_TYPES, ChannelDefinition
from provisioning.tile import TileIds, tile_xml
from shared.domain.models import ResponseType

VIEW = "4112769c-f12d-4f63-b8c3-9068fecbb4e9"
FORM = "404ba31b-2c12-4233-8711-804b78de1267"


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own generated XML


def test_response_type_ids_equal_the_domain_enum() -> None:
    assert [spec.id for spec in RESPONSE_TYPES] == [member.value for member in ResponseType]
    assert [spec.response_type for spec in RESPONSE_TYPES if spec.custom] == [ResponseType.KEYWORD]


def test_tile_xml_follows_the_schema_and_the_definition() -> None:
    definition = ChannelDefinition(prefix="cr123")
    root = parse(tile_xml(definition, TileIds("cr123_smsmessages", VIEW, FORM)))
    assert root.tag == "LibraryTile"
    props = {child.tag: child.text for child in root.findall("./ChannelProperties/*")}
    assert props == {
        "EntityType": "cr123_smsmessage",
        "EntitySetName": "cr123_smsmessages",
        "TitleFieldName": "cr123_name",
        "ComplianceField": "donotphone",
        "LookupViewId": VIEW.upper(),
        "QuickViewFormId": FORM.upper(),
    }
    types = root.findall("./ResponseTypes/ResponseType")
    assert [t.get("id") for t in types] == ["sent", "delivered", "opened", "failed", "keyword"]
    assert [t.get("id") for t in types if t.get("custom") == "True"] == ["keyword"]
    for labels in [*root.findall("./ResponseTypes/ResponseType/Labels"), root.find("Labels"), root.find("Tooltips")]:
        assert labels is not None
        assert [item.get("locId") for item in labels] == ["1033"]
        assert all(item.text for item in labels)


def test_tile_without_quick_view_form_omits_the_element() -> None:
    root = parse(tile_xml(ChannelDefinition(prefix="cr123"), TileIds("cr123_smsmessages", VIEW)))
    assert root.find("./ChannelProperties/QuickViewFormId") is None


def test_app_settings_follow_from_table_column_and_tile() -> None:
    definition = ChannelDefinition(prefix="abc", compliance_column="donotsms")
    settings = definition.app_settings()
    assert settings["MESSAGE_BODY_COLUMN"] == definition.body_column_body()["SchemaName"].lower() == "abc_body"
    root = parse(tile_xml(definition, TileIds("abc_smsmessages", VIEW)))
    assert root.findtext("./ChannelProperties/ComplianceField") == settings["COMPLIANCE_COLUMN"] == "donotsms"
    assert root.findtext("./ChannelProperties/EntityType") == definition.table_body()["SchemaName"].lower()
    primary = definition.table_body()["Attributes"][0]
    assert root.findtext("./ChannelProperties/TitleFieldName") == primary["SchemaName"].lower()
    assert definition.web_resource_name == "abc_SmsCustomerJourneyDesignerTileConfig.xml"


@pytest.mark.parametrize("prefix", ["", "c", "Cr123", "1abc", "toolongprefix", "mscrm", "cr_1"])
def test_invalid_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        ChannelDefinition(prefix=prefix)
