"""The Dataverse emulator's real-time journeys endpoints enforce the rules ``channel provision --rtj`` relies on."""

from __future__ import annotations

from typing import Any

import requests

from devtools.emulators.dataverse import DataverseEmulator
from provisioning.rtj_definition import RtjChannel

from .conftest import PLUGIN_TYPE_ID, TOKEN

H = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}
CHANNEL = RtjChannel(prefix="cr123")


def post(org: DataverseEmulator, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{org.api_url}/{path}", json=body, headers=H, timeout=5)


def patch(org: DataverseEmulator, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.patch(f"{org.api_url}/{path}", json=body, headers={**H, "If-Match": "*"}, timeout=5)


def get(org: DataverseEmulator, path: str, **params: str) -> requests.Response:
    return requests.get(f"{org.api_url}/{path}", params=params, headers=H, timeout=5)


def created_id(response: requests.Response) -> str:
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def test_custom_api_deep_insert_is_atomic_and_immutable_columns_stay(rtj_org: DataverseEmulator) -> None:
    bad = CHANNEL.custom_api_body(PLUGIN_TYPE_ID)
    bad["CustomAPIResponseProperties"] = [{**CHANNEL.response_property_body(), "type": 99}]
    assert post(rtj_org, "customapis", bad).status_code == 400
    assert rtj_org.rows("customapi") == {} and rtj_org.rows("customapirequestparameter") == {}
    api_id = created_id(post(rtj_org, "customapis", CHANNEL.custom_api_body(PLUGIN_TYPE_ID)))
    params = get(rtj_org, "customapirequestparameters", **{"$filter": f"_customapiid_value eq {api_id}"}).json()
    assert [(p["uniquename"], p["type"]) for p in params["value"]] == [("payload", 10)]
    assert post(rtj_org, "customapis", CHANNEL.custom_api_body(None)).status_code == 400  # same uniquename
    refused = patch(rtj_org, f"customapis({api_id})", {"isfunction": True})
    assert refused.status_code == 400 and "cannot be changed" in refused.json()["error"]["message"]
    assert patch(rtj_org, f"customapis({api_id})", {"displayname": "new"}).status_code == 204
    wrong_case = patch(rtj_org, f"customapis({api_id})", {"plugintypeid@odata.bind": f"/plugintypes({PLUGIN_TYPE_ID})"})
    assert wrong_case.status_code == 400  # navigation property names are case-sensitive


def test_relationships_extend_the_polymorphic_lookup_once(rtj_org: DataverseEmulator) -> None:
    table = CHANNEL.instance_table
    missing = post(rtj_org, "RelationshipDefinitions", table.relationship_body())
    assert missing.status_code == 404  # the referenced table does not exist yet
    assert post(rtj_org, "EntityDefinitions", table.table_body()).status_code == 204
    assert post(rtj_org, "RelationshipDefinitions", table.relationship_body()).status_code == 204
    again = post(rtj_org, "RelationshipDefinitions", {**table.relationship_body(), "SchemaName": "cr123_other"})
    assert again.status_code == 400 and "already has a relationship" in again.json()["error"]["message"]
    not_polymorphic = {**table.relationship_body(), "SchemaName": "cr123_x", "ReferencingEntity": "contact"}
    not_polymorphic["Lookup"] = {**not_polymorphic["Lookup"], "SchemaName": "donotphone"}
    assert post(rtj_org, "RelationshipDefinitions", not_polymorphic).status_code == 400
    found = get(
        rtj_org,
        "EntityDefinitions(LogicalName='msdyn_channelinstance')/ManyToOneRelationships",
        **{"$select": "SchemaName,ReferencingAttribute", "$filter": "ReferencedEntity eq 'cr123_channelinstance'"},
    ).json()["value"]
    assert found == [{"SchemaName": table.relationship_schema_name, "ReferencingAttribute": "msdyn_extendedentityid"}]


def test_role_privileges(rtj_org: DataverseEmulator) -> None:
    assert post(rtj_org, "EntityDefinitions", CHANNEL.instance_table.table_body()).status_code == 204
    read = next(k for k, r in rtj_org.rows("privilege").items() if r["name"] == "prvReadcr123_channelinstance")
    role = rtj_org.role_id("Cxp Channel Definitions Services User")
    action = f"roles({role})/Microsoft.Dynamics.CRM.AddPrivilegesRole"
    assert post(rtj_org, action, {"Privileges": [{"Depth": "Organization", "PrivilegeId": read}]}).status_code == 400
    assert post(rtj_org, action, {"Privileges": [{"Depth": "Global", "PrivilegeId": read}]}).status_code == 204
    held = get(rtj_org, f"RetrieveRolePrivilegesRole(RoleId={role})").json()["RolePrivileges"]
    assert [(p["PrivilegeId"], p["Depth"], p["PrivilegeName"]) for p in held] == [
        (read, "Global", "prvReadcr123_channelinstance")
    ]


def test_channel_definition_and_message_part_rules(rtj_org: DataverseEmulator) -> None:
    assert post(rtj_org, "EntityDefinitions", CHANNEL.instance_table.table_body()).status_code == 204
    columns = CHANNEL.channel_definition_columns(None, None)
    del columns["msdyn_channeldefinitionaccountexternalentity"]  # the account table was not created here
    custom_with_account = {**columns, "msdyn_channeltype": "Custom"}
    assert post(rtj_org, "msdyn_channeldefinitions", custom_with_account).status_code == 400
    definition = created_id(post(rtj_org, "msdyn_channeldefinitions", columns))
    bind = {"msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({definition})"}
    second = {**CHANNEL.message_part_columns(), "msdyn_name": "title", **bind}
    assert post(rtj_org, "msdyn_channelmessageparts", second).status_code == 400  # SMS: only "text"
    assert post(rtj_org, "msdyn_channelmessageparts", {**CHANNEL.message_part_columns(), **bind}).status_code == 204
    assert post(rtj_org, "msdyn_channelmessageparts", {**CHANNEL.message_part_columns(), **bind}).status_code == 400


def test_secret_variable_value_must_be_a_key_vault_reference(rtj_org: DataverseEmulator) -> None:
    # provisioning never creates a Key Vault-backed variable (plug-ins cannot read one); the emulator still models it
    body = {**CHANNEL.variable_definition_body(CHANNEL.relay_secret_variable), "type": 100000005}
    definition = created_id(post(rtj_org, "environmentvariabledefinitions", body))
    bind = {"EnvironmentVariableDefinitionId@odata.bind": f"/environmentvariabledefinitions({definition})"}
    plain = post(rtj_org, "environmentvariablevalues", {"schemaname": body["schemaname"], "value": "x", **bind})
    assert plain.status_code == 400 and "Key Vault" in plain.json()["error"]["message"]
    assert patch(rtj_org, f"environmentvariabledefinitions({definition})", {"type": 100000000}).status_code == 400


def test_managed_identity_rows_and_the_assembly_binding(rtj_org: DataverseEmulator) -> None:
    """The minimum the emulator models for Power Platform managed identity (Microsoft's table reference)."""
    identity = {"name": "relay", "applicationid": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "subjectscope": 1}
    assert post(rtj_org, "managedidentities", {**identity, "credentialsource": 7}).status_code == 400
    assert post(rtj_org, "managedidentities", {"name": "relay", "credentialsource": 2}).status_code == 400
    identity_id = created_id(post(rtj_org, "managedidentities", {**identity, "credentialsource": 2}))
    assembly_id = rtj_org.get_row("plugintype", PLUGIN_TYPE_ID)["_pluginassemblyid_value"]  # type: ignore[index]
    missing = "/managedidentities(00000000-0000-4000-8000-00000000dead)"
    path = f"pluginassemblies({assembly_id})"
    assert patch(rtj_org, path, {"managedidentityid@odata.bind": missing}).status_code == 400
    bind = {"managedidentityid@odata.bind": f"/managedidentities({identity_id})"}
    assert patch(rtj_org, path, bind).status_code == 204
    row = get(rtj_org, path, **{"$select": "pluginassemblyid,_managedidentityid_value"}).json()
    assert row["_managedidentityid_value"] == identity_id
