"""The ONE definition of the channel's Dataverse artefacts.

Outbound marketing: the tile XML, the message table and its body column, and the app settings that must agree with
them (``MESSAGE_BODY_COLUMN``, ``COMPLIANCE_COLUMN``) are all derived from :class:`ChannelDefinition`, so they
cannot disagree. Response-type ids are the values of :class:`shared.domain.models.ResponseType`.
Real-time journeys: see provisioning/rtj_definition.py (:class:`RtjChannel`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.domain.models import ACTIVITY_ENTITY, ResponseType

LCID_ENGLISH = 1033

_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,7}$")
_TILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,39}$")
_LOGICAL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ResponseTypeSpec:
    """One ``<ResponseType>`` of the tile."""

    response_type: ResponseType
    label: str
    custom: bool = False

    @property
    def id(self) -> str:
        return self.response_type.value


# Order is the order in the tile. Exactly one custom="True" type (the tile schema allows at most one).
RESPONSE_TYPES: tuple[ResponseTypeSpec, ...] = (
    ResponseTypeSpec(ResponseType.SENT, "Sent"),
    ResponseTypeSpec(ResponseType.DELIVERED, "Delivered"),
    ResponseTypeSpec(ResponseType.OPENED, "Opened"),
    ResponseTypeSpec(ResponseType.CLICKED, "Clicked a link"),
    ResponseTypeSpec(ResponseType.FAILED, "Failed"),
    ResponseTypeSpec(ResponseType.KEYWORD, "Keyword reply", custom=True),
)

BODY_MAX_LENGTH = 1600  # Twilio's maximum message body; longer texts are rejected by the provider anyway
NAME_MAX_LENGTH = 100


def validate_prefix(prefix: str) -> str:
    """A solution publisher customization prefix: 2-8 lower-case letters/digits, starting with a letter."""
    if not _PREFIX.match(prefix) or prefix.startswith("mscrm"):
        raise ValueError(
            f"publisher prefix {prefix!r} is invalid: use 2-8 lower-case letters or digits starting with a letter "
            "(not 'mscrm'), e.g. cr123"
        )
    return prefix


def label(text: str) -> dict[str, Any]:
    """A metadata ``Label`` with one English (1033) localized label."""
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": LCID_ENGLISH}
        ],
    }


def required_none() -> dict[str, Any]:
    return {"Value": "None", "CanBeChanged": True, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}


def table_metadata(
    schema_name: str, display_name: str, description: str, *, name_schema: str, name_description: str
) -> dict[str, Any]:
    """``POST EntityDefinitions``: a user-owned table with only its primary name column (String, 100)."""
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": schema_name,
        "DisplayName": label(display_name),
        "DisplayCollectionName": label(f"{display_name}s"),
        "Description": label(description),
        "OwnershipType": "UserOwned",
        "IsActivity": False,
        "HasActivities": False,
        "HasNotes": False,
        "Attributes": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "AttributeType": "String",
                "AttributeTypeName": {"Value": "StringType"},
                "SchemaName": name_schema,
                "IsPrimaryName": True,
                "MaxLength": NAME_MAX_LENGTH,
                "FormatName": {"Value": "Text"},
                "RequiredLevel": required_none(),
                "DisplayName": label("Name"),
                "Description": label(name_description),
            }
        ],
    }


@dataclass(frozen=True)
class ChannelDefinition:
    """Everything Dataverse-side that the tile, the table and the app settings share."""

    prefix: str
    tile_name: str = "Sms"
    table: str = "SmsMessage"  # schema name of the message table without the prefix
    compliance_column: str = "donotphone"  # boolean contact column: the tile's ComplianceField
    tile_label: str = "SMS"
    tile_tooltip: str = "Send a text message (SMS) to the contact"

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if not _TILE_NAME.match(self.tile_name):
            raise ValueError(f"tile name {self.tile_name!r} must be letters and digits, starting with a letter")
        if not _TILE_NAME.match(self.table):
            raise ValueError(f"table name {self.table!r} must be letters and digits, starting with a letter")
        if not _LOGICAL.match(self.compliance_column):
            raise ValueError(f"compliance column {self.compliance_column!r} must be a logical column name")
        customs = [spec for spec in RESPONSE_TYPES if spec.custom]
        if len(customs) != 1:  # pragma: no cover - guards edits of RESPONSE_TYPES
            raise ValueError("the tile must declare exactly one custom response type")

    # --- names -----------------------------------------------------------------------------------
    @property
    def table_logical_name(self) -> str:
        return f"{self.prefix}_{self.table.lower()}"

    @property
    def table_schema_name(self) -> str:
        return f"{self.prefix}_{self.table}"

    @property
    def predicted_entity_set_name(self) -> str:
        """What Dataverse normally derives; the real value is read back from metadata after creation."""
        return f"{self.table_logical_name}s"

    @property
    def primary_id_column(self) -> str:
        return f"{self.table_logical_name}id"

    @property
    def name_column(self) -> str:
        return f"{self.prefix}_name"

    @property
    def body_column(self) -> str:
        return f"{self.prefix}_body"

    @property
    def web_resource_name(self) -> str:
        return f"{self.prefix}_{self.tile_name}CustomerJourneyDesignerTileConfig.xml"

    @property
    def activity_entity(self) -> str:
        return ACTIVITY_ENTITY

    def app_settings(self) -> dict[str, str]:
        """Function app settings that follow from this definition."""
        return {"MESSAGE_BODY_COLUMN": self.body_column, "COMPLIANCE_COLUMN": self.compliance_column}

    # --- metadata request bodies ------------------------------------------------------------------
    def table_body(self) -> dict[str, Any]:
        """``POST EntityDefinitions``: the message table with its primary name column."""
        return table_metadata(
            self.table_schema_name,
            f"{self.tile_label} message",
            f"Texts sent by the {self.tile_label} custom channel tile of customer journeys",
            name_schema=f"{self.prefix}_Name",
            name_description="Name of the message, shown in the journey designer",
        )

    def body_column_body(self) -> dict[str, Any]:
        """``POST EntityDefinitions(LogicalName=…)/Attributes``: the multi-line text column with the message."""
        return {
            "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            "AttributeType": "Memo",
            "AttributeTypeName": {"Value": "MemoType"},
            "SchemaName": f"{self.prefix}_Body",
            "Format": "TextArea",
            "ImeMode": "Disabled",
            "MaxLength": BODY_MAX_LENGTH,
            "IsLocalizable": False,
            "RequiredLevel": required_none(),
            "DisplayName": label("Text"),
            "Description": label("Text of the message; {{contact.<column>}} placeholders are personalised"),
        }
