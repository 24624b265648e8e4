"""Every Dataverse table provisioning writes rows to, and every column it writes, in ONE table.

``COLUMNS[table][column]`` is the column's MaxLength for a text column and ``None`` for any other type. Every row
write goes through :func:`check_row` first (dry run included): a string longer than its column's MaxLength, or a
column missing from this table, stops the run with a message naming the table and the column, before Dataverse
rejects the request half-way through. A partner has no reference data at run time, so the limits live here;
``tests/provisioning/test_tables.py`` checks each of them against Microsoft's published table metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# table logical name -> {column: MaxLength of a text column, or None for every other type}
COLUMNS: dict[str, dict[str, int | None]] = {
    "publisher": {
        "uniquename": 256,
        "friendlyname": 256,
        "customizationprefix": 8,
        "customizationoptionvalueprefix": None,
    },
    "solution": {"uniquename": 65, "friendlyname": 256, "version": 256},
    "webresource": {"name": 256, "displayname": 200, "webresourcetype": None, "content": 1073741823},
    "serviceendpoint": {
        "name": 256,
        "description": 2000,
        "contract": None,
        "connectionmode": None,
        "authtype": None,
        "namespaceformat": None,
        "namespaceaddress": 255,
        "solutionnamespace": 160,
        "path": 160,
        "saskeyname": 256,
        "saskey": 256,
        "messageformat": None,
        "userclaim": None,
    },
    "sdkmessageprocessingstep": {
        "name": 256,
        "description": 256,
        "mode": None,
        "stage": None,
        "rank": None,
        "supporteddeployment": None,
        "asyncautodelete": None,
    },
    "systemuser": {"applicationid": None, "isdisabled": None},
    "customapi": {
        "uniquename": 128,
        "name": 100,
        "displayname": 100,
        "description": 300,
        "bindingtype": None,
        "isfunction": None,
        "allowedcustomprocessingsteptype": None,
    },
    "customapirequestparameter": {
        "uniquename": 128,
        "name": 100,
        "displayname": 100,
        "description": 300,
        "type": None,
        "isoptional": None,
    },
    "customapiresponseproperty": {"uniquename": 128, "name": 100, "displayname": 100, "description": 100, "type": None},
    "environmentvariabledefinition": {"schemaname": 100, "displayname": 100, "description": 2000, "type": None},
    "environmentvariablevalue": {"schemaname": 100, "value": 2000},
    "msdyn_channeldefinition": {
        "msdyn_channeldefinitionid": None,
        "msdyn_name": 100,
        "msdyn_displayname": 100,
        "msdyn_description": 100,
        "msdyn_channeltype": 100,
        "msdyn_outboundendpointurltemplate": 1000,
        "msdyn_hasdeliveryreceipt": None,
        "msdyn_hasinbound": None,
        "msdyn_supportsaccount": None,
        "msdyn_channeldefinitionexternalentity": 100,
        "msdyn_channeldefinitionexternalformid": 100,
        "msdyn_channeldefinitionaccountexternalentity": 100,
        "msdyn_channeldefinitionaccountexternalformid": 100,
    },
    # systemform: the message table's main form gets the WhatsApp template columns (issue #17); formxml is a Memo
    # column, MaxLength from powerapps-docs reference/entities/systemform.md (not in the shared reference data)
    "systemform": {"formxml": 1073741823},
    "msdyn_channelmessagepart": {
        "msdyn_channelmessagepartid": None,
        "msdyn_name": 100,
        "msdyn_displayname": 100,
        "msdyn_description": 100,
        "msdyn_type": None,
        "msdyn_isrequired": None,
        "msdyn_maxlength": None,
    },
    # Power Platform managed identity for plug-ins (powerapps-docs reference/entities/managedidentity.md);
    # ``version`` is described by "Set up Power Platform managed identity" but not in the generated reference yet.
    "managedidentity": {
        "managedidentityid": None,
        "name": 100,
        "applicationid": None,
        "tenantid": None,
        "credentialsource": None,
        "subjectscope": None,
        "version": None,
    },
    "pluginassembly": {},  # only the managedidentityid lookup is written (a bind)
}

# table -> the single-valued navigation properties provisioning binds (``<name>@odata.bind``)
BINDS: dict[str, frozenset[str]] = {
    "solution": frozenset({"publisherid"}),
    "sdkmessageprocessingstep": frozenset({"eventhandler_serviceendpoint", "sdkmessageid", "sdkmessagefilterid"}),
    "systemuser": frozenset({"businessunitid"}),
    "customapi": frozenset({"PluginTypeId"}),
    "customapirequestparameter": frozenset({"CustomAPIId"}),
    "customapiresponseproperty": frozenset({"CustomAPIId"}),
    "environmentvariablevalue": frozenset({"EnvironmentVariableDefinitionId"}),
    "msdyn_channelmessagepart": frozenset({"msdyn_ChannelDefinitionId"}),
    "pluginassembly": frozenset({"managedidentityid"}),
}

# table -> collection-valued navigation property -> child table (deep insert)
DEEP_INSERTS: dict[str, dict[str, str]] = {
    "customapi": {
        "CustomAPIRequestParameters": "customapirequestparameter",
        "CustomAPIResponseProperties": "customapiresponseproperty",
    },
}


class ColumnError(ValueError):
    """A value provisioning is about to write does not fit its column (or the column is not in :data:`COLUMNS`)."""


@dataclass(frozen=True)
class Table:
    """A table provisioning writes rows to."""

    logical_name: str
    entity_set: str
    id_column: str


def table(logical_name: str, entity_set: str, id_column: str | None = None) -> Table:
    if logical_name not in COLUMNS:
        raise KeyError(f"{logical_name} is not in provisioning.tables.COLUMNS")
    return Table(logical_name, entity_set, id_column or f"{logical_name}id")


PUBLISHER = table("publisher", "publishers")
SOLUTION = table("solution", "solutions")
WEB_RESOURCE = table("webresource", "webresourceset")
SERVICE_ENDPOINT = table("serviceendpoint", "serviceendpoints")
STEP = table("sdkmessageprocessingstep", "sdkmessageprocessingsteps")
SYSTEM_USER = table("systemuser", "systemusers")
CUSTOM_API = table("customapi", "customapis")
CUSTOM_API_REQUEST_PARAMETER = table("customapirequestparameter", "customapirequestparameters")
CUSTOM_API_RESPONSE_PROPERTY = table("customapiresponseproperty", "customapiresponseproperties")
ENV_VAR_DEFINITION = table("environmentvariabledefinition", "environmentvariabledefinitions")
ENV_VAR_VALUE = table("environmentvariablevalue", "environmentvariablevalues")
CHANNEL_DEFINITION = table("msdyn_channeldefinition", "msdyn_channeldefinitions")
MESSAGE_PART = table("msdyn_channelmessagepart", "msdyn_channelmessageparts")
SYSTEM_FORM = table("systemform", "systemforms", "formid")
MANAGED_IDENTITY = table("managedidentity", "managedidentities")
PLUGIN_ASSEMBLY = table("pluginassembly", "pluginassemblies")


def utf16_length(value: str) -> int:
    """A string's length as Dataverse (.NET) counts it: UTF-16 code units (an emoji counts 2)."""
    return len(value.encode("utf-16-le")) // 2


def check_row(logical_name: str, body: Mapping[str, Any]) -> None:
    """Raise :class:`ColumnError` unless every column of ``body`` is known and every string fits its MaxLength."""
    columns = COLUMNS[logical_name]
    for name, value in body.items():
        if name.startswith("@"):
            continue
        if name.endswith("@odata.bind"):
            navigation = name.removesuffix("@odata.bind")
            if navigation not in BINDS.get(logical_name, frozenset()):
                raise ColumnError(f"{logical_name}.{navigation} is not a lookup provisioning knows (tables.BINDS)")
            continue
        child = DEEP_INSERTS.get(logical_name, {}).get(name)
        if child is not None:
            for item in value:
                check_row(child, item)
            continue
        if name not in columns:
            raise ColumnError(f"{logical_name}.{name} is not a column provisioning knows (tables.COLUMNS)")
        limit = columns[name]
        if isinstance(value, str) and limit is not None and utf16_length(value) > limit:
            raise ColumnError(
                f"{logical_name}.{name} would be {utf16_length(value)} characters long; its MaxLength is {limit}. "
                "Shorten the option it comes from (names, display names, URLs) and run again"
            )
