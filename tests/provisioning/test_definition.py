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
    assert [t.get("id") for t in types] == ["sent", "delivered", "opened", "clicked", "failed", "keyword"]
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


def test_rtj_names_derive_from_the_prefix() -> None:
    from provisioning.rtj_definition import RtjChannel

    sms, custom = RtjChannel(prefix="abc"), RtjChannel(prefix="abc", channel_type="custom")
    assert sms.custom_api_name == "abc_ChannelOutbound"
    assert sms.outbound_endpoint_template == "/abc_ChannelOutbound"
    assert (sms.relay_url_variable, sms.relay_secret_variable) == ("abc_ChannelRelayUrl", "abc_ChannelRelaySecret")
    assert [t.logical_name for t in sms.extended_tables] == ["abc_channelinstance", "abc_channelinstanceaccount"]
    assert [t.logical_name for t in custom.extended_tables] == ["abc_channelinstance"]
    for table in sms.extended_tables:  # "lowerCamelCase" logical name: schema name == logical name, lower case
        assert table.table_body()["SchemaName"] == table.logical_name == table.logical_name.lower()
        assert table.read_privilege == f"prvRead{table.logical_name}"
    assert sms.channel_definition_id == RtjChannel(prefix="abc").channel_definition_id != custom.channel_definition_id
    assert RtjChannel(prefix="abc", api_name="abc_SmsOut").outbound_endpoint_template == "/abc_SmsOut"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel_type": "whatsapp"}, "channel type"),
        ({"api_name": "xyz_Out"}, "custom API name"),
        ({"plugin_type": "NoNamespace"}, "plug-in type"),
    ],
)
def test_invalid_rtj_definitions_are_refused(kwargs: dict[str, str], message: str) -> None:
    from provisioning.rtj_definition import RtjChannel

    with pytest.raises(ValueError, match=message):
        RtjChannel(prefix="abc", **kwargs)


@pytest.mark.parametrize("channel_type", ["sms", "custom"])
@pytest.mark.parametrize("display_name", [None, "N" * 90])
def test_every_rtj_string_fits_its_column(channel_type: str, display_name: str | None) -> None:
    """msdyn_description was 102-105 characters and the custom API displayname overflowed past ~68-character names."""
    from provisioning.rtj_definition import RtjChannel
    from provisioning.tables import check_row

    channel = RtjChannel(prefix="abcdefgh", channel_type=channel_type, display_name=display_name)
    form = "00000000-0000-0000-0000-000000000000"
    check_row("customapi", channel.custom_api_body("5c3e1f0a-7b2d-4e6f-9a8b-1c2d3e4f5a6b"))
    check_row("msdyn_channeldefinition", channel.channel_definition_columns(form, form))
    check_row("msdyn_channelmessagepart", channel.message_part_columns())
    for name in (channel.relay_url_variable, channel.relay_scope_variable, channel.relay_secret_variable):
        check_row("environmentvariabledefinition", channel.variable_definition_body(name))
    columns = channel.channel_definition_columns(form, form)
    assert columns["msdyn_name"] == columns["msdyn_displayname"] == channel.channel_display_name  # the primary name


@pytest.mark.parametrize(
    "spelling",
    [
        "Marketing Services User Extensible",
        "Marketing Services User Extensible Role",
        "Marketing Service user extensible role",
        "  marketing  SERVICES user extensible ",
    ],
)
def test_role_names_match_as_microsoft_spells_them(spelling: str) -> None:
    from provisioning.rtj import role_key

    assert role_key(spelling) == role_key("Marketing Services User Extensible")
    assert role_key("Marketing Services User") != role_key("Marketing Services User Extensible")
    assert role_key("Rolemaster") == "rolemaster"
