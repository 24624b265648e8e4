"""The Dataverse emulator's customization API enforces the rules provisioning relies on."""

from __future__ import annotations

from typing import Any

import requests

from devtools.emulators.dataverse import SDK_MESSAGE_CREATE_ID, DataverseEmulator

from .conftest import TOKEN

H = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


def post(org: DataverseEmulator, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(f"{org.api_url}/{path}", json=body, headers={**H, **headers}, timeout=5)


def endpoint(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "e",
        "contract": 2,
        "authtype": 2,
        "namespaceformat": 2,
        "namespaceaddress": "sb://ns.servicebus.windows.net/",
        "solutionnamespace": "ns",
        "path": "q",
        "saskeyname": "send",
        "saskey": "secret",
        "messageformat": 2,
        **overrides,
    }


def test_sas_key_is_write_only(org: DataverseEmulator) -> None:
    created = post(org, "serviceendpoints", endpoint())
    assert created.status_code == 204
    location = created.headers["OData-EntityId"]
    row = requests.get(location, headers=H, timeout=5).json()
    assert "saskey" not in row
    assert row["issaskeyset"] is True
    selected = requests.get(location, params={"$select": "saskey,name"}, headers=H, timeout=5).json()
    assert selected["saskey"] is None


def test_service_endpoint_rules(org: DataverseEmulator) -> None:
    bad = post(org, "serviceendpoints", endpoint(messageformat=4))  # not an option of the column (metadata)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "0x8004431a"
    assert "messageformat" in bad.json()["error"]["message"]
    bad = post(org, "serviceendpoints", endpoint(namespaceaddress="https://ns/"))  # a rule beyond the metadata
    assert bad.status_code == 400
    assert "namespaceaddress" in bad.json()["error"]["message"]


def test_service_endpoint_steps_must_be_async_post_operation(org: DataverseEmulator) -> None:
    location = post(org, "serviceendpoints", endpoint()).headers["OData-EntityId"]
    endpoint_id = location.rsplit("(", 1)[1].rstrip(")")
    step = {
        "name": "s",
        "mode": 0,
        "stage": 40,
        "rank": 1,
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
        "sdkmessageid@odata.bind": f"/sdkmessages({SDK_MESSAGE_CREATE_ID})",
    }
    sync = post(org, "sdkmessageprocessingsteps", step)
    assert sync.status_code == 400
    assert "only asynchronous" in sync.json()["error"]["message"]
    pre_op = post(org, "sdkmessageprocessingsteps", {**step, "mode": 1, "stage": 20})
    assert pre_op.status_code == 400
    assert "stage 40" in pre_op.json()["error"]["message"]
    assert post(org, "sdkmessageprocessingsteps", {**step, "mode": 1}).status_code == 204


def test_unknown_solution_header_is_404(org: DataverseEmulator) -> None:
    resp = post(org, "serviceendpoints", endpoint(), **{"MSCRM.SolutionUniqueName": "Nope"})
    assert resp.status_code == 404
    assert "Nope" in resp.json()["error"]["message"]
    assert org.rows("serviceendpoint") == {}


def test_table_metadata_validation_and_duplicates(org: DataverseEmulator) -> None:
    from provisioning.definition import ChannelDefinition

    body = ChannelDefinition(prefix="cr123").table_body()
    no_label = {**body, "DisplayName": {"LocalizedLabels": [{"Label": "x", "LanguageCode": 1031}]}}
    assert post(org, "EntityDefinitions", no_label).status_code == 400
    assert post(org, "EntityDefinitions", body).status_code == 204
    again = post(org, "EntityDefinitions", body)
    assert again.status_code == 400
    assert "already exists" in again.json()["error"]["message"]
    attr = requests.get(
        f"{org.api_url}/EntityDefinitions(LogicalName='cr123_smsmessage')/Attributes(LogicalName='cr123_name')",
        params={"$select": "LogicalName,AttributeType,IsPrimaryName"},
        headers=H,
        timeout=5,
    ).json()
    assert (attr["AttributeType"], attr["IsPrimaryName"]) == ("String", True)
    meta = requests.get(
        f"{org.api_url}/EntityDefinitions(LogicalName='cr123_smsmessage')",
        params={"$select": "EntitySetName,PrimaryNameAttribute"},
        headers=H,
        timeout=5,
    ).json()
    assert (meta["EntitySetName"], meta["PrimaryNameAttribute"]) == ("cr123_smsmessages", "cr123_name")


def test_publish_xml_checks_what_it_publishes(org: DataverseEmulator) -> None:
    missing = "<importexportxml><webresources><webresource>{0d0d0d0d-0000-4000-8000-000000000000}</webresource>"
    resp = post(org, "PublishXml", {"ParameterXml": missing + "</webresources></importexportxml>"})
    assert resp.status_code == 404
    assert post(org, "PublishXml", {"ParameterXml": "<nope/>"}).status_code == 400
    assert org.published == []
