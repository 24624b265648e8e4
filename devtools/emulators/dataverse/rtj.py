"""Real-time journeys: the base solution's channel tables, custom API tables, environment variables, plug-in types,
roles and privileges (``enable_rtj``), ``RetrieveRolePrivilegesRole``, ``roles(<id>)/AddPrivilegesRole`` and the row
rules Dataverse enforces on those tables."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from devtools.emulators._base import Response
from devtools.emulators.dataverse import errors, odata
from devtools.emulators.dataverse.errors import DataverseError
from devtools.emulators.dataverse.models import Entity, is_guid
from devtools.emulators.dataverse.request import Call

if TYPE_CHECKING:
    from devtools.emulators.dataverse.server import DataverseEmulator

# logical name: (entity set, primary key, columns)
RTJ_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "plugintype": ("plugintypes", "plugintypeid", ("typename", "name", "friendlyname", "_pluginassemblyid_value")),
    "customapi": (
        "customapis",
        "customapiid",
        (
            "uniquename",
            "name",
            "displayname",
            "description",
            "bindingtype",
            "boundentitylogicalname",
            "isfunction",
            "isprivate",
            "allowedcustomprocessingsteptype",
            "executeprivilegename",
            "_plugintypeid_value",
        ),
    ),
    "customapirequestparameter": (
        "customapirequestparameters",
        "customapirequestparameterid",
        (
            "uniquename",
            "name",
            "displayname",
            "description",
            "type",
            "isoptional",
            "logicalentityname",
            "_customapiid_value",
        ),
    ),
    "customapiresponseproperty": (
        "customapiresponseproperties",
        "customapiresponsepropertyid",
        ("uniquename", "name", "displayname", "description", "type", "logicalentityname", "_customapiid_value"),
    ),
    "environmentvariabledefinition": (
        "environmentvariabledefinitions",
        "environmentvariabledefinitionid",
        ("schemaname", "displayname", "description", "type", "defaultvalue", "secretstore"),
    ),
    "environmentvariablevalue": (
        "environmentvariablevalues",
        "environmentvariablevalueid",
        ("schemaname", "value", "_environmentvariabledefinitionid_value"),
    ),
    "msdyn_channeldefinition": (
        "msdyn_channeldefinitions",
        "msdyn_channeldefinitionid",
        (
            "msdyn_name",
            "msdyn_displayname",
            "msdyn_description",
            "msdyn_channeltype",
            "msdyn_outboundendpointurltemplate",
            "msdyn_hasinbound",
            "msdyn_hasdeliveryreceipt",
            "msdyn_supportsaccount",
            "msdyn_channeldefinitionexternalentity",
            "msdyn_channeldefinitionexternalformid",
            "msdyn_channeldefinitionaccountexternalentity",
            "msdyn_channeldefinitionaccountexternalformid",
            "msdyn_messageformid",
            "msdyn_specialconsentrequired",
            "msdyn_supportsattachment",
            "msdyn_supportsbinary",
            "statecode",
            "statuscode",
        ),
    ),
    "msdyn_channelmessagepart": (
        "msdyn_channelmessageparts",
        "msdyn_channelmessagepartid",
        (
            "msdyn_name",
            "msdyn_displayname",
            "msdyn_description",
            "msdyn_type",
            "msdyn_isrequired",
            "msdyn_maxlength",
            "msdyn_order",
            "msdyn_entityname",
            "msdyn_entityviewid",
            "_msdyn_channeldefinitionid_value",
        ),
    ),
    "msdyn_channelinstance": (
        "msdyn_channelinstances",
        "msdyn_channelinstanceid",
        (
            "msdyn_name",
            "msdyn_description",
            "msdyn_contactpoint",
            "_msdyn_channeldefinitionid_value",
            "_msdyn_channelinstanceaccountid_value",
            "_msdyn_extendedentityid_value",
        ),
    ),
    "msdyn_channelinstanceaccount": (
        "msdyn_channelinstanceaccounts",
        "msdyn_channelinstanceaccountid",
        ("msdyn_name", "msdyn_description", "_msdyn_channeldefinitionid_value", "_msdyn_extendedentityid_value"),
    ),
    "role": ("roles", "roleid", ("name", "_businessunitid_value", "_parentroleid_value")),
    "privilege": ("privileges", "privilegeid", ("name", "accessright")),
    # Power Platform managed identity for plug-ins: a managedidentity row bound to the plug-in assembly
    "managedidentity": (
        "managedidentities",
        "managedidentityid",
        ("name", "applicationid", "tenantid", "credentialsource", "subjectscope", "version"),
    ),
    "pluginassembly": ("pluginassemblies", "pluginassemblyid", ("name", "_managedidentityid_value")),
}
RTJ_NAVIGATIONS: dict[str, dict[str, str]] = {
    "customapi": {"PluginTypeId": "_plugintypeid_value"},
    "customapirequestparameter": {"CustomAPIId": "_customapiid_value"},
    "customapiresponseproperty": {"CustomAPIId": "_customapiid_value"},
    "environmentvariablevalue": {"EnvironmentVariableDefinitionId": "_environmentvariabledefinitionid_value"},
    "msdyn_channelmessagepart": {"msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value"},
    "msdyn_channelinstance": {
        "msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value",
        "msdyn_ChannelInstanceAccountId": "_msdyn_channelinstanceaccountid_value",
    },
    "msdyn_channelinstanceaccount": {"msdyn_ChannelDefinitionId": "_msdyn_channeldefinitionid_value"},
    "pluginassembly": {"managedidentityid": "_managedidentityid_value"},
}
# columns that cannot change after creation (Dataverse refuses the update)
IMMUTABLE: dict[str, tuple[str, ...]] = {
    "customapi": (
        "uniquename",
        "bindingtype",
        "boundentitylogicalname",
        "isfunction",
        "allowedcustomprocessingsteptype",
    ),
    "customapirequestparameter": ("uniquename", "type", "isoptional"),
    "customapiresponseproperty": ("uniquename", "type"),
    "environmentvariabledefinition": ("schemaname", "type"),
}
RTJ_ROLES = ("Cxp Channel Definitions Services User", "Marketing Services User Extensible", "System Administrator")
ENV_VAR_TYPES = {100000000, 100000001, 100000002, 100000003, 100000004, 100000005}  # Text … Secret
ENV_VAR_SECRET = 100000005
MESSAGE_PART_TYPES = {192350000, *range(192350003, 192350011)}
PRIVILEGE_DEPTHS = {"Basic": 0, "Local": 1, "Deep": 2, "Global": 3}
_DEPTH_NAMES = {v: k for k, v in PRIVILEGE_DEPTHS.items()}
_KEY_VAULT_SECRET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+/secrets/[^/]+$", re.I
)


def install(emu: DataverseEmulator, roles: Iterable[str]) -> None:
    """Register the RTJ tables, the polymorphic ``msdyn_extendedentityid`` lookups and the roles (``enable_rtj``)."""
    store = emu.store
    for logical, (set_name, pk, columns) in RTJ_TABLES.items():
        ent = store.add_entity(logical, set_name, pk)
        ent.columns.update(columns)
        ent.navigations.update(RTJ_NAVIGATIONS.get(logical, {}))
        ent.strict_navigations = True
    for base in ("msdyn_channelinstance", "msdyn_channelinstanceaccount"):
        ent = store.entities[base]
        account = base.endswith("account")
        ent.schema_name = "msdyn_ChannelInstanceAccount" if account else "msdyn_ChannelInstance"
        ent.attribute_types["msdyn_extendedentityid"] = "Lookup"
        ent.columns.add("msdyn_extendedentityid")
        emu.polymorphic_lookups.add((base, "msdyn_extendedentityid"))
        native = "msdyn_defextendedchannelinstance" + ("account" if account else "")
        emu.relationships.append(
            {
                "MetadataId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/rel/{base}/{native}")),
                "SchemaName": f"{ent.schema_name}_extendedentityid_{native}",
                "ReferencedEntity": native,
                "ReferencedAttribute": f"{native}id",
                "ReferencingEntity": base,
                "ReferencingAttribute": "msdyn_extendedentityid",
                "RelationshipType": "OneToManyRelationship",
            }
        )
    for name in roles:
        emu.add_row(
            "role",
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataverse-emulator/role/{name}")),
            {"name": name, "_businessunitid_value": emu.business_unit_id, "_parentroleid_value": None},
        )


# ---------------------------------------------------------------------------------------------------- privileges
def _role(emu: DataverseEmulator, role_id: str) -> dict[str, Any]:
    roles = emu.store.entities.get("role")
    if roles is None or not is_guid(role_id) or role_id.lower() not in roles.rows:
        raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"role With Id = {role_id} Does Not Exist")
    return roles.rows[role_id.lower()]


def retrieve_role_privileges(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    role_id = odata.resolve_alias(match.group("id").strip(), call.query).strip("'")
    role = _role(emu, role_id)
    names = emu.store.entities["privilege"].rows
    items = [
        {
            "Depth": _DEPTH_NAMES[depth],
            "PrivilegeId": privilege,
            "BusinessUnitId": role.get("_businessunitid_value"),
            "PrivilegeName": names.get(privilege, {}).get("name"),
        }
        for privilege, depth in sorted(emu.role_privileges.get(role_id.lower(), {}).items())
    ]
    ctx = f"{emu.api_url}/$metadata#Microsoft.Dynamics.CRM.RetrieveRolePrivilegesRoleResponse"
    return emu.json_response(200, {"@odata.context": ctx, "RolePrivileges": items})


def add_privileges_role(emu: DataverseEmulator, call: Call, match: re.Match[str]) -> Response:
    role_id = match.group("id").lower()
    body = call.json_body()
    _role(emu, role_id)
    for name in body:
        if not name.startswith("@") and name not in ("Privileges", "SolutionUniqueName"):
            raise errors.unknown_parameter(name, "AddPrivilegesRole")
    items = body.get("Privileges")
    if not isinstance(items, list) or not items:
        raise DataverseError(400, errors.INVALID_ARGUMENT, "Required parameter 'Privileges' is missing or empty.")
    known = emu.store.entities["privilege"].rows
    granted: dict[str, int] = {}
    for item in items:
        if not isinstance(item, dict):
            raise DataverseError(400, errors.ODATA, "Each RolePrivilege must be an object.")
        depth = item.get("Depth")
        level = PRIVILEGE_DEPTHS.get(depth) if isinstance(depth, str) else None
        if level is None:
            raise DataverseError(
                400, errors.ODATA, f"Depth '{depth}' is not a PrivilegeDepth member (Basic, Local, Deep, Global)."
            )
        privilege = str(item.get("PrivilegeId", "")).lower()
        if privilege not in known:
            raise DataverseError(404, errors.OBJECT_DOES_NOT_EXIST, f"privilege With Id = {privilege} Does Not Exist")
        granted[privilege] = level
    held = emu.role_privileges.setdefault(role_id, {})
    for privilege, level in granted.items():
        held[privilege] = max(level, held.get(privilege, -1))
    return emu.no_content()


# ---------------------------------------------------------------------------------------------------- row rules
def validate_rtj_row(emu: DataverseEmulator, ent: Entity, row: dict[str, Any], key: str | None) -> list[str]:
    problems: list[str] = []
    tables = emu.store.entities

    def required(*columns: str) -> None:
        problems.extend(f"'{c}' is required" for c in columns if row.get(c) in (None, ""))

    def unique(*columns: str) -> None:
        for other_key, other in ent.rows.items():
            if other_key != key and all(other.get(c) == row.get(c) for c in columns):
                problems.append(f"a row with the same {'/'.join(c.strip('_') for c in columns)} exists")
                return

    def exists(column: str, table: str) -> None:
        value = row.get(column)
        if value is not None and value not in tables[table].rows:
            problems.append(f"'{column}' {value} does not exist")

    name = ent.logical_name
    if name == "customapi":
        required("uniquename", "name", "displayname")
        if row.get("uniquename") and not re.match(r"^[A-Za-z0-9]+_[A-Za-z0-9_]+$", str(row["uniquename"])):
            problems.append("'uniquename' must be '<prefix>_<Name>'")
        for column in ("bindingtype", "allowedcustomprocessingsteptype"):
            if row.get(column) not in (None, 0, 1, 2):
                problems.append(f"'{column}' must be 0, 1 or 2")
        if row.get("isfunction") not in (None, True, False):
            problems.append("'isfunction' must be a boolean")
        unique("uniquename")
        exists("_plugintypeid_value", "plugintype")
    elif name in ("customapirequestparameter", "customapiresponseproperty"):
        required("uniquename", "name", "displayname", "type", "_customapiid_value")
        if row.get("type") not in (None, *range(0, 13)):
            problems.append("'type' must be 0-12")
        unique("_customapiid_value", "uniquename")
        exists("_customapiid_value", "customapi")
    elif name == "managedidentity":
        required("applicationid", "credentialsource", "subjectscope", "name")
        if row.get("credentialsource") not in (None, 0, 1, 2, 3):
            problems.append("'credentialsource' must be 0-3")
        if row.get("subjectscope") not in (None, 0, 1, 2):
            problems.append("'subjectscope' must be 0-2")
    elif name == "pluginassembly":
        exists("_managedidentityid_value", "managedidentity")
    elif name == "environmentvariabledefinition":
        required("schemaname", "displayname", "type")
        if row.get("type") is not None and row.get("type") not in ENV_VAR_TYPES:
            problems.append(f"'type' must be one of {sorted(ENV_VAR_TYPES)}")
        unique("schemaname")
    elif name == "environmentvariablevalue":
        required("schemaname", "_environmentvariabledefinitionid_value")
        exists("_environmentvariabledefinitionid_value", "environmentvariabledefinition")
        unique("_environmentvariabledefinitionid_value")
        definition = tables["environmentvariabledefinition"].rows.get(
            str(row.get("_environmentvariabledefinitionid_value"))
        )
        secret = definition is not None and definition.get("type") == ENV_VAR_SECRET
        if secret and not _KEY_VAULT_SECRET_ID.match(str(row.get("value") or "")):
            problems.append("a Secret variable's value must be a Key Vault secret id (/subscriptions/…/secrets/…)")
    elif name == "msdyn_channeldefinition":
        problems += _channel_definition_problems(emu, row)
    elif name == "msdyn_channelmessagepart":
        required("msdyn_name", "msdyn_type", "_msdyn_channeldefinitionid_value")
        exists("_msdyn_channeldefinitionid_value", "msdyn_channeldefinition")
        if row.get("msdyn_type") is not None and row.get("msdyn_type") not in MESSAGE_PART_TYPES:
            problems.append("'msdyn_type' is not a message part type")
        definition = tables["msdyn_channeldefinition"].rows.get(str(row.get("_msdyn_channeldefinitionid_value")))
        if definition and definition.get("msdyn_channeltype") == "SMS":
            if row.get("msdyn_name") != "text" or row.get("msdyn_type") != 192350000:
                problems.append("an SMS channel has exactly one part: name 'text', type 192350000")
            unique("_msdyn_channeldefinitionid_value")
        else:
            unique("_msdyn_channeldefinitionid_value", "msdyn_name")
    return problems


def _channel_definition_problems(emu: DataverseEmulator, row: dict[str, Any]) -> list[str]:
    problems = [
        f"'{c}' is required"
        for c in ("msdyn_channeltype", "msdyn_outboundendpointurltemplate", "msdyn_channeldefinitionexternalentity")
        if row.get(c) in (None, "")
    ]
    for column in ("msdyn_hasinbound", "msdyn_hasdeliveryreceipt", "msdyn_supportsaccount"):
        if row.get(column) not in (True, False):
            problems.append(f"'{column}' is required (true or false)")
    channel_type = row.get("msdyn_channeltype")
    if channel_type not in (None, "SMS", "Custom"):
        problems.append("'msdyn_channeltype' must be 'SMS' or 'Custom'")
    if channel_type in ("SMS", "Custom") and row.get("msdyn_supportsaccount") is not (channel_type == "SMS"):
        problems.append("'msdyn_supportsaccount' must be true for SMS and false otherwise")
    if channel_type == "Custom" and row.get("msdyn_hasinbound"):
        problems.append("inbound applies to SMS channels only")
    if not str(row.get("msdyn_outboundendpointurltemplate") or "/").startswith("/"):
        problems.append("'msdyn_outboundendpointurltemplate' must be '/' + the custom API name")
    for column in ("msdyn_channeldefinitionexternalentity", "msdyn_channeldefinitionaccountexternalentity"):
        table = row.get(column)
        if table and table not in emu.store.entities:
            problems.append(f"'{column}' names a table that does not exist: {table}")
    return problems
