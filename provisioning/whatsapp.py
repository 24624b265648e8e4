"""``channel provision --whatsapp`` (issue #17): WhatsApp template columns on the message table and its main form
(the form a marketer edits the tile's message with), and, with ``--rtj``, template message parts on the real-time
journeys channel definition next to ``text``.

Columns (the app settings that name them): Template (MESSAGE_TEMPLATE_COLUMN: a Twilio Content SID or a Cloud API
template name), Template language (MESSAGE_TEMPLATE_LANGUAGE_COLUMN), Template variables
(MESSAGE_TEMPLATE_VARIABLES_COLUMN: a JSON object) and Media URL (MESSAGE_MEDIA_COLUMN). Idempotent like every
other step: a re-run on a provisioned org only reads.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from provisioning.definition import ChannelDefinition, label, required_none
from provisioning.rtj_definition import MESSAGE_PART_PLAINTEXT, RtjChannel
from provisioning.tables import MESSAGE_PART, SYSTEM_FORM
from provisioning.toolkit import ProvisionError, Steps, checked, ensure_row, lit

FORM_TYPE_MAIN = 2
_NAMESPACE = uuid.UUID("8b3d6c1e-2f4a-4e5b-9c7d-1a2b3c4d5e6f")
TAB_NAME = "whatsapp_template"


@dataclass(frozen=True)
class TemplateColumn:
    suffix: str  # schema name after the prefix
    display: str
    description: str
    memo: bool
    max_length: int
    setting: str
    part: str  # the real-time journeys message part (shared/app/whatsapp_rtj.py)


COLUMNS = (
    TemplateColumn(
        "Template",
        "WhatsApp template",
        "Approved template: a Twilio Content SID (HX...) or a WhatsApp Cloud API template name",
        False,
        200,
        "MESSAGE_TEMPLATE_COLUMN",
        "templatename",
    ),
    TemplateColumn(
        "TemplateLanguage",
        "Template language",
        "WhatsApp Cloud API template language code, e.g. en_US",
        False,
        20,
        "MESSAGE_TEMPLATE_LANGUAGE_COLUMN",
        "templatelanguage",
    ),
    TemplateColumn(
        "TemplateVariables",
        "Template variables",
        'JSON object of template variables, e.g. {"1": "{{contact.firstname}}", "2": "20%"}',
        True,
        4000,
        "MESSAGE_TEMPLATE_VARIABLES_COLUMN",
        "templatevariables",
    ),
    TemplateColumn(
        "MediaUrl",
        "Media URL",
        "Public https URL of an image sent with the message (optional)",
        False,
        1000,
        "MESSAGE_MEDIA_COLUMN",
        "mediaurl",
    ),
)


def logical(definition: ChannelDefinition, column: TemplateColumn) -> str:
    return f"{definition.prefix}_{column.suffix.lower()}"


def app_settings(definition: ChannelDefinition) -> dict[str, str]:
    return {column.setting: logical(definition, column) for column in COLUMNS}


def column_body(definition: ChannelDefinition, column: TemplateColumn) -> dict[str, Any]:
    """``POST EntityDefinitions(LogicalName=…)/Attributes``: a text column (String) or multi-line text (Memo)."""
    body: dict[str, Any] = {
        "SchemaName": f"{definition.prefix}_{column.suffix}",
        "MaxLength": column.max_length,
        "RequiredLevel": required_none(),
        "DisplayName": label(column.display),
        "Description": label(column.description),
    }
    if column.memo:
        kind = {"@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata", "AttributeType": "Memo"}
        return {**kind, "AttributeTypeName": {"Value": "MemoType"}, "Format": "TextArea", **body}
    kind = {"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "AttributeType": "String"}
    return {**kind, "AttributeTypeName": {"Value": "StringType"}, "FormatName": {"Value": "Text"}, **body}


def form_with_columns(formxml: str, columns: list[str]) -> str | None:
    """The form XML with a "WhatsApp template" tab holding the columns it lacks; None when nothing is missing."""
    missing = [c for c in columns if not re.search(rf'datafieldname="{re.escape(c)}"', formxml)]
    if not missing:
        return None
    try:
        # The org's own form definition, read over the authenticated Web API (no external entities in FormXml).
        root = ET.fromstring(formxml)  # noqa: S314  # nosec B314
    except ET.ParseError:
        raise ProvisionError("the main form's XML does not parse; add the WhatsApp columns by hand") from None
    tabs = root.find("tabs")
    if tabs is None:
        tabs = ET.SubElement(root, "tabs")
    tab = ET.SubElement(tabs, "tab", {"name": TAB_NAME, "id": _id(TAB_NAME), "expanded": "true", "showlabel": "true"})
    ET.SubElement(ET.SubElement(tab, "labels"), "label", {"description": "WhatsApp template", "languagecode": "1033"})
    section = ET.SubElement(
        ET.SubElement(ET.SubElement(tab, "columns"), "column", {"width": "100%"}),
        "sections",
    )
    section = ET.SubElement(section, "section", {"name": f"{TAB_NAME}_section", "id": _id(f"{TAB_NAME}/section")})
    rows = ET.SubElement(section, "rows")
    for column in missing:
        cell = ET.SubElement(ET.SubElement(rows, "row"), "cell", {"id": _id(f"cell/{column}")})
        ET.SubElement(cell, "control", {"id": column, "datafieldname": column})
    return ET.tostring(root, encoding="unicode")


def _id(name: str) -> str:
    return "{" + str(uuid.uuid5(_NAMESPACE, name)) + "}"


def empty_form() -> str:
    return "<form><tabs /></form>"


class WhatsAppSteps:
    """The template columns and the main form of the outbound-marketing message table."""

    def __init__(self, steps: Steps, definition: ChannelDefinition) -> None:
        self.s = steps
        self.gw = steps.gw
        self.defn = definition

    def run(self, *, table_new: bool) -> bool:
        """Returns True when a column or the form changed (the caller publishes the table)."""
        created = [column for column in COLUMNS if self.ensure_column(column, table_new=table_new)]
        form_changed = self.ensure_form(table_new=table_new)
        if created or form_changed:
            table = self.defn.table_logical_name
            xml = f"<importexportxml><entities><entity>{table}</entity></entities></importexportxml>"
            self.gw.write("POST", "PublishXml", {"ParameterXml": xml}, operation="publish")
        return bool(created) or form_changed

    def ensure_column(self, column: TemplateColumn, *, table_new: bool) -> bool:
        table = self.defn.table_logical_name
        name = logical(self.defn, column)
        path = f"EntityDefinitions(LogicalName={lit(table)})"
        attribute = None
        if not (table_new and self.gw.dry_run):
            attribute = self.gw.read(
                f"{path}/Attributes(LogicalName={lit(name)})",
                {"$select": "LogicalName,AttributeType"},
                operation="read column",
            )
        if attribute is None:
            self.s.create_metadata(
                f"{path}/Attributes", column_body(self.defn, column), what="column", placeholder="<new column id>"
            )
            self.s.changed(f"create column {table}.{name}")
            return True
        if attribute.get("AttributeType") not in ("Memo", "String"):
            raise ProvisionError(f"column {table}.{name} exists as {attribute.get('AttributeType')}; it must be text")
        self.s.ok(f"column {table}.{name}")
        return False

    def ensure_form(self, *, table_new: bool) -> bool:
        table = self.defn.table_logical_name
        columns = [logical(self.defn, c) for c in COLUMNS]
        if table_new and self.gw.dry_run:
            self.s.changed(f"add {', '.join(columns)} to the main form of {table}")
            return True
        forms = self.s.rows(
            SYSTEM_FORM,
            ("formid", "name", "formxml"),
            f"objecttypecode eq {lit(table)} and type eq {FORM_TYPE_MAIN}",
            what="main form",
        )
        if not forms:
            self.s.note(f"Table {table} has no main form: add the WhatsApp template columns to a form by hand.")
            return False
        form = forms[0]
        formxml = form_with_columns(str(form.get("formxml") or empty_form()), columns)
        if formxml is None:
            self.s.ok(f"main form {form.get('name')} with the WhatsApp template columns")
            return False
        self.s.update(SYSTEM_FORM, str(form["formid"]), {"formxml": formxml}, what=f"main form {form.get('name')}")
        self.s.changed(f"add the WhatsApp template columns to main form {form.get('name')}")
        return True


def part_id(channel: RtjChannel, part: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"messagepart/{channel.channel_definition_id}/{part}"))


def part_columns(column: TemplateColumn) -> dict[str, Any]:
    return {
        "msdyn_name": column.part,
        "msdyn_displayname": column.display,
        "msdyn_description": column.description[:100],
        "msdyn_type": MESSAGE_PART_PLAINTEXT,
        "msdyn_isrequired": False,
        "msdyn_maxlength": column.max_length,
    }


class WhatsAppPartSteps:
    """Template parts on the real-time journeys channel definition (``--rtj --whatsapp``)."""

    def __init__(self, steps: Steps, channel: RtjChannel) -> None:
        if channel.is_sms:
            raise ProvisionError("--whatsapp with --rtj needs --rtj-channel-type custom (an SMS channel has one part)")
        self.s = steps
        self.ch = channel

    def preflight(self) -> None:
        for column in COLUMNS:
            checked(MESSAGE_PART, part_columns(column))

    def run(self) -> None:
        definition_id = self.ch.channel_definition_id
        for column in COLUMNS:
            columns = part_columns(column)
            ensure_row(
                self.s,
                MESSAGE_PART,
                columns,
                what=f"message part {column.part}",
                where=f"_msdyn_channeldefinitionid_value eq {definition_id} and msdyn_name eq {lit(column.part)}",
                select=sorted(columns),
                body={
                    "msdyn_channelmessagepartid": part_id(self.ch, column.part),
                    **columns,
                    "msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({definition_id})",
                },
                placeholder=part_id(self.ch, column.part),
            )
