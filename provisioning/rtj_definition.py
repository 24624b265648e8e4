"""The ONE definition of the real-time journeys side of the channel.

The custom API, the relay plug-in's environment variables, the extended tables and their relationships, the channel
definition and its ``text`` message part are derived from :class:`RtjChannel`: every name from the publisher prefix.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from provisioning.definition import BODY_MAX_LENGTH, label, required_none, table_metadata, validate_prefix

# --- real-time journeys (the successor contract) ---------------------------------------------------------
# Reference: /work/shared/reference/real-time-journeys.md §1.4, dataverse.md §6 and Microsoft's "Define the custom
# channel" / "Define the message parts" / "Define an extended configuration entity" pages.
RTJ_CHANNEL_TYPES = {"sms": "SMS", "custom": "Custom"}  # CLI value -> msdyn_channeltype (a string column)
RELAY_PLUGIN_TYPE = "ChannelRelay.OutboundRelayPlugin"  # rtj-relay/ChannelRelayPlugin.cs
MESSAGE_PART_TEXT = "text"  # the one SMS part; shared.domain.rtj.OutboundPayload.text() reads this key
MESSAGE_PART_PLAINTEXT = 192350000  # msdyn_channelmessagepart.msdyn_type
CUSTOM_API_STRING = 10  # customapirequestparameter / customapiresponseproperty .type
CUSTOM_API_BINDING_GLOBAL = 0
CUSTOM_API_NO_CUSTOM_STEPS = 0  # allowedcustomprocessingsteptype None: the relay plug-in is the main operation
ENV_VAR_TEXT = 100000000  # environmentvariabledefinition.type String ("Text"): the only type the relay reads
PAYLOAD_PARAMETER = "payload"
RESPONSE_PROPERTY = "response"
EXTENDED_LOOKUP = "msdyn_extendedentityid"  # polymorphic lookup on msdyn_channelinstance / …account
EXTENDED_LOOKUP_SCHEMA = "msdyn_extendedentityId"
CHANNEL_INSTANCE = "msdyn_channelinstance"
CHANNEL_INSTANCE_ACCOUNT = "msdyn_channelinstanceaccount"
# Roles that read the extended tables while a journey is submitted. Microsoft's pages name "Cxp Channel Definitions
# Services User" (channel instance; the 2023 account page) and "Marketing Services User Extensible" (the 2025 account
# page): Read on every extended table is granted to both.
RTJ_READ_ROLES = ("Cxp Channel Definitions Services User", "Marketing Services User Extensible")
DISPLAY_NAME_MAX_LENGTH = 90  # + ": outbound" = the custom API displayname, MaxLength 100
_RTJ_NAMESPACE = uuid.UUID("6b0f3c1e-9a44-5d7e-8c21-4f3a2b1d0e57")  # fixed: ids stay stable across releases


@dataclass(frozen=True)
class ExtendedTable:
    """An extended configuration table of ``msdyn_channelinstance`` or ``msdyn_channelinstanceaccount``.

    Microsoft requires the extended table's logical name in "lowerCamelCase"; a logical name is always lower case,
    so the schema name is kept entirely lower case too (schema name == logical name, as in Microsoft's samples
    ``cr65f_samplechannelinstance``): nothing can differ in case between the two.
    """

    logical_name: str
    base_table: str  # msdyn_channelinstance or msdyn_channelinstanceaccount
    label: str

    @property
    def schema_name(self) -> str:
        return self.logical_name

    @property
    def name_column(self) -> str:
        return self.logical_name.split("_", 1)[0] + "_name"

    @property
    def read_privilege(self) -> str:
        """``prvRead`` + the table's schema name."""
        return f"prvRead{self.schema_name}"

    @property
    def relationship_schema_name(self) -> str:
        """The name Microsoft's docs ship (``msdyn_ChannelInstance_extendedentityid_<table>``)."""
        base = (
            "msdyn_ChannelInstanceAccount" if self.base_table == CHANNEL_INSTANCE_ACCOUNT else "msdyn_ChannelInstance"
        )
        return f"{base}_extendedentityid_{self.logical_name}"

    def table_body(self) -> dict[str, Any]:
        """``POST EntityDefinitions``: the table with only its primary name column (the app keeps no settings in it)."""
        return table_metadata(
            self.schema_name,
            self.label,
            f"Extended configuration of {self.base_table} for the real-time journeys custom channel",
            name_schema=self.name_column,
            name_description="Name of this configuration",
        )

    def relationship_body(self) -> dict[str, Any]:
        """``POST RelationshipDefinitions``: one more target of the existing polymorphic ``msdyn_extendedentityid``.

        Microsoft's "Add relationship to existing polymorphic lookup" (multi-table lookups, Web API): a
        ``OneToManyRelationshipMetadata`` whose ``Lookup`` names the existing lookup's schema name. Cascades and
        navigation property names are those of the relationship XML in Microsoft's channel-instance pages.
        """
        return {
            "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
            "SchemaName": self.relationship_schema_name,
            "ReferencedEntity": self.logical_name,
            "ReferencedAttribute": f"{self.logical_name}id",
            "ReferencingEntity": self.base_table,
            "ReferencingEntityNavigationPropertyName": f"{EXTENDED_LOOKUP}_{self.logical_name}",
            "ReferencedEntityNavigationPropertyName": self.relationship_schema_name,
            "IsValidForAdvancedFind": True,
            "AssociatedMenuConfiguration": {"Behavior": "UseCollectionName", "Group": "Details", "Order": 10000},
            "CascadeConfiguration": {
                "Assign": "NoCascade",
                "Delete": "RemoveLink",
                "Merge": "NoCascade",
                "Reparent": "NoCascade",
                "Share": "NoCascade",
                "Unshare": "NoCascade",
                "RollupView": "NoCascade",
            },
            "Lookup": {
                "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
                "AttributeType": "Lookup",
                "AttributeTypeName": {"Value": "LookupType"},
                "SchemaName": EXTENDED_LOOKUP_SCHEMA,
                "DisplayName": label("Extended Entity Id"),
                "Description": label("LookUp for Extended Entities brought in by custom channels."),
                "RequiredLevel": required_none(),
            },
        }


@dataclass(frozen=True)
class RtjChannel:
    """The real-time journeys side of the channel: custom API, relay variables, tables, definition, message part.

    Every name derives from the publisher prefix, so a re-run (or another engineer) finds the same components.
    """

    prefix: str
    channel_type: str = "sms"  # sms | custom
    api_name: str | None = None  # default <prefix>_ChannelOutbound
    plugin_type: str = RELAY_PLUGIN_TYPE
    display_name: str | None = None

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if self.channel_type not in RTJ_CHANNEL_TYPES:
            raise ValueError(f"channel type must be one of {sorted(RTJ_CHANNEL_TYPES)}, not {self.channel_type!r}")
        if not re.match(rf"^{self.prefix}_[A-Za-z][A-Za-z0-9_]{{0,100}}$", self.custom_api_name):
            raise ValueError(
                f"custom API name {self.custom_api_name!r} must be '{self.prefix}_<Name>' (letters, digits, _)"
            )
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$", self.plugin_type):
            raise ValueError(f"plug-in type {self.plugin_type!r} must be a full .NET type name (Namespace.Class)")
        if self.display_name is not None and not 0 < len(self.display_name.strip()) <= DISPLAY_NAME_MAX_LENGTH:
            raise ValueError(
                f"--rtj-display-name must be 1-{DISPLAY_NAME_MAX_LENGTH} characters (it becomes the channel "
                "definition's msdyn_name and msdyn_displayname, and '<name>: outbound' the custom API's displayname, "
                f"all MaxLength 100), not {len(self.display_name)}"
            )

    # --- names ------------------------------------------------------------------------------------------
    @property
    def is_sms(self) -> bool:
        return self.channel_type == "sms"

    @property
    def msdyn_channeltype(self) -> str:
        return RTJ_CHANNEL_TYPES[self.channel_type]

    @property
    def custom_api_name(self) -> str:
        return self.api_name or f"{self.prefix}_ChannelOutbound"

    @property
    def outbound_endpoint_template(self) -> str:
        """``msdyn_outboundendpointurltemplate``: the custom API's unique name with a leading slash."""
        return "/" + self.custom_api_name

    @property
    def relay_url_variable(self) -> str:
        return f"{self.prefix}_ChannelRelayUrl"

    @property
    def relay_scope_variable(self) -> str:
        return f"{self.prefix}_ChannelRelayScope"

    @property
    def relay_secret_variable(self) -> str:
        return f"{self.prefix}_ChannelRelaySecret"

    @property
    def instance_table(self) -> ExtendedTable:
        return ExtendedTable(f"{self.prefix}_channelinstance", CHANNEL_INSTANCE, "Channel instance configuration")

    @property
    def account_table(self) -> ExtendedTable | None:
        """SMS channels only: the extended channel-instance-account table."""
        if not self.is_sms:
            return None
        return ExtendedTable(
            f"{self.prefix}_channelinstanceaccount", CHANNEL_INSTANCE_ACCOUNT, "Channel account configuration"
        )

    @property
    def extended_tables(self) -> tuple[ExtendedTable, ...]:
        account = self.account_table
        return (self.instance_table,) if account is None else (self.instance_table, account)

    @property
    def channel_definition_id(self) -> str:
        """A stable id (uuid5 of prefix and type), so a re-run finds the row it created."""
        return str(uuid.uuid5(_RTJ_NAMESPACE, f"channeldefinition/{self.prefix}/{self.channel_type}"))

    @property
    def message_part_id(self) -> str:
        return str(uuid.uuid5(_RTJ_NAMESPACE, f"messagepart/{self.channel_definition_id}/{MESSAGE_PART_TEXT}"))

    @property
    def channel_display_name(self) -> str:
        return self.display_name or ("Custom SMS" if self.is_sms else "Custom messaging")

    # --- request bodies -----------------------------------------------------------------------------------
    def custom_api_body(self, plugin_type_id: str | None) -> dict[str, Any]:
        """``POST customapis`` with its request parameter and response property (deep insert)."""
        body: dict[str, Any] = {
            **self.custom_api_columns(),
            "bindingtype": CUSTOM_API_BINDING_GLOBAL,
            "isfunction": False,
            "allowedcustomprocessingsteptype": CUSTOM_API_NO_CUSTOM_STEPS,
        }
        if plugin_type_id:
            body["PluginTypeId@odata.bind"] = f"/plugintypes({plugin_type_id})"
        body["CustomAPIRequestParameters"] = [self.payload_parameter_body()]
        body["CustomAPIResponseProperties"] = [self.response_property_body()]
        return body

    def custom_api_columns(self) -> dict[str, Any]:
        """The columns that may be updated later (the others cannot change after creation)."""
        return {
            "uniquename": self.custom_api_name,
            "name": self.custom_api_name,
            "displayname": f"{self.channel_display_name}: outbound",
            "description": "Called by real-time journeys for each message; the ChannelRelay plug-in forwards the "
            "payload to the Function app's /api/rtj/outbound and returns its answer as response",
        }

    def payload_parameter_body(self) -> dict[str, Any]:
        return {
            "uniquename": PAYLOAD_PARAMETER,
            "name": f"{self.custom_api_name}.{PAYLOAD_PARAMETER}",
            "displayname": "Payload",
            "description": "Serialized JSON from real-time journeys (ChannelDefinitionId, RequestId, From, To, …)",
            "type": CUSTOM_API_STRING,
            "isoptional": False,
        }

    def response_property_body(self) -> dict[str, Any]:
        return {
            "uniquename": RESPONSE_PROPERTY,
            "name": f"{self.custom_api_name}.{RESPONSE_PROPERTY}",
            "displayname": "Response",
            "description": "Serialized JSON for real-time journeys (ChannelDefinitionId, RequestId, Status, …)",
            "type": CUSTOM_API_STRING,
        }

    def variable_definition_body(self, schema_name: str) -> dict[str, Any]:
        """``POST environmentvariabledefinitions`` for one of the relay's three Text variables (relay contract)."""
        texts = {
            self.relay_url_variable: (
                "Channel relay URL",
                "The Function app's real-time journeys endpoint: https://<app>/api/rtj/outbound",
            ),
            self.relay_scope_variable: (
                "Channel relay token scope",
                "Entra mode: the relay gets a token for this scope (api://<app id>/.default) with the plug-in "
                "assembly's managed identity and sends it as a bearer token. Set this or the relay secret, not both",
            ),
            self.relay_secret_variable: (
                "Channel relay secret",
                "Secret mode: sent by the relay as X-Channel-Secret; equals the app's RTJ_OUTBOUND_SECRET. Readable "
                "by anyone who can read environment variable values. Set this or the relay token scope, not both",
            ),
        }
        display, description = texts[schema_name]
        return {"schemaname": schema_name, "displayname": display, "description": description, "type": ENV_VAR_TEXT}

    def channel_definition_columns(self, instance_form_id: str | None, account_form_id: str | None) -> dict[str, Any]:
        """``msdyn_channeldefinition`` columns (Microsoft's "Channel Definition contract")."""
        columns: dict[str, Any] = {
            "msdyn_name": self.channel_display_name,  # the primary name (ApplicationRequired)
            "msdyn_displayname": self.channel_display_name,
            "msdyn_description": f"Real-time journeys {self.msdyn_channeltype} channel, sent by its Function app",
            "msdyn_channeltype": self.msdyn_channeltype,
            "msdyn_outboundendpointurltemplate": self.outbound_endpoint_template,
            "msdyn_hasdeliveryreceipt": True,
            "msdyn_hasinbound": self.is_sms,  # inbound applies to SMS-type channels only
            "msdyn_supportsaccount": self.is_sms,  # must be true for SMS, false otherwise
            "msdyn_channeldefinitionexternalentity": self.instance_table.logical_name,
        }
        if instance_form_id:
            columns["msdyn_channeldefinitionexternalformid"] = instance_form_id
        account = self.account_table
        if account is not None:
            columns["msdyn_channeldefinitionaccountexternalentity"] = account.logical_name
            if account_form_id:
                columns["msdyn_channeldefinitionaccountexternalformid"] = account_form_id
        return columns

    def message_part_columns(self) -> dict[str, Any]:
        return {
            "msdyn_name": MESSAGE_PART_TEXT,
            "msdyn_displayname": "Text",
            "msdyn_description": "Text of the message",
            "msdyn_type": MESSAGE_PART_PLAINTEXT,
            "msdyn_isrequired": True,
            "msdyn_maxlength": BODY_MAX_LENGTH,
        }
