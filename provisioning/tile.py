"""The channel's tile XML (``<prefix>_<name>CustomerJourneyDesignerTileConfig.xml``), rendered from the definition.

Schema: Microsoft's "Configure the custom channel tile" (outbound marketing): ``LibraryTile`` with
``ChannelProperties`` (EntityType, EntitySetName, TitleFieldName, ComplianceField, LookupViewId, QuickViewFormId),
``ResponseTypes`` (one ``custom="True"`` type at most, a 1033 label each), ``Labels`` and ``Tooltips`` (1033 required).
The output is deterministic, so the uploaded web resource can be compared byte for byte on a re-run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from provisioning.definition import LCID_ENGLISH, RESPONSE_TYPES, ChannelDefinition

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class TileIds:
    """Ids the tile needs that only exist once the table exists in the org."""

    entity_set_name: str
    lookup_view_id: str
    quick_view_form_id: str | None = None  # the docs' sample marks only LookupViewId as mandatory


def _guid(value: str) -> str:
    """Ids in the upper-case form of Microsoft's sample; anything else (a dry-run placeholder) as is."""
    return value.upper() if _GUID.match(value) else value


def _labels(parent: ET.Element, tag: str, child: str, text: str) -> None:
    group = ET.SubElement(parent, tag)
    item = ET.SubElement(group, child, {"locId": str(LCID_ENGLISH)})
    item.text = text


def tile_xml(definition: ChannelDefinition, ids: TileIds) -> str:
    root = ET.Element("LibraryTile")
    props = ET.SubElement(root, "ChannelProperties")
    for tag, value in (
        ("EntityType", definition.table_logical_name),
        ("EntitySetName", ids.entity_set_name),
        ("TitleFieldName", definition.name_column),
        ("ComplianceField", definition.compliance_column),
        ("LookupViewId", _guid(ids.lookup_view_id)),
        ("QuickViewFormId", _guid(ids.quick_view_form_id) if ids.quick_view_form_id else None),
    ):
        if value is not None:
            ET.SubElement(props, tag).text = value
    types = ET.SubElement(root, "ResponseTypes")
    for spec in RESPONSE_TYPES:
        attrs = {"id": spec.id}
        if spec.custom:
            attrs["custom"] = "True"
        _labels(ET.SubElement(types, "ResponseType", attrs), "Labels", "Label", spec.label)
    _labels(root, "Labels", "Label", definition.tile_label)
    _labels(root, "Tooltips", "Tooltip", definition.tile_tooltip)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
