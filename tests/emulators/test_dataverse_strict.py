"""The strict Dataverse emulator: every create/update is checked against Microsoft's published table metadata
(``CHANNEL_REFERENCE_DATA``) and refused with Dataverse's codes and messages. Each test sends a deliberately wrong
payload next to a right one, so a check that stopped working fails here."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.emulators.dataverse import DataverseEmulator
from devtools.reference_data import ENV_DATAVERSE_METADATA, ENV_ROOT, ReferenceDataMissing, dataverse_tables_dir

H = {
    "Authorization": "Bearer t0k3n",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Accept": "application/json",
}
PAYLOAD_PREFIX = "Error identified in Payload provided by the user for Entity :'"


@pytest.fixture
def org() -> Iterator[DataverseEmulator]:
    with DataverseEmulator(token="t0k3n") as dv:
        dv.enable_rtj()
        yield dv


def post(dv: DataverseEmulator, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{dv.api_url}/{path}", json=body, headers=H, timeout=5)


def patch(dv: DataverseEmulator, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.patch(f"{dv.api_url}/{path}", json=body, headers=H, timeout=5)


def error_of(resp: requests.Response, status: int = 400) -> dict[str, str]:
    """The error body, which must be exactly Dataverse's shape ``{"error": {"code", "message"}}``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"].startswith("0x")
    return dict(body["error"])


def definition(**overrides: Any) -> dict[str, Any]:
    """A channel definition a real org accepts."""
    return {
        "msdyn_name": "Contoso SMS",
        "msdyn_displayname": "Contoso SMS",
        "msdyn_description": "Real-time journeys SMS channel",
        "msdyn_channeltype": "SMS",
        "msdyn_outboundendpointurltemplate": "/cr123_ChannelOutbound",
        "msdyn_hasinbound": True,
        "msdyn_hasdeliveryreceipt": True,
        "msdyn_supportsaccount": True,
        "msdyn_channeldefinitionexternalentity": "msdyn_channelinstance",
        **overrides,
    }


def created(resp: requests.Response) -> str:
    assert resp.status_code == 204, resp.text
    return resp.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def test_a_valid_channel_definition_is_created(org: DataverseEmulator) -> None:
    key = created(post(org, "msdyn_channeldefinitions", definition()))
    assert org.get_row("msdyn_channeldefinition", key)["msdyn_name"] == "Contoso SMS"  # type: ignore[index]


def test_unknown_attribute_is_refused_with_0x80048d19(org: DataverseEmulator) -> None:
    err = error_of(post(org, "msdyn_channeldefinitions", definition(msdyn_nosuch="x")))
    assert err["code"] == "0x80048d19"
    assert err["message"].startswith(PAYLOAD_PREFIX + "msdyn_channeldefinitions'")
    assert err["message"].endswith(
        "Invalid property 'msdyn_nosuch' was found in entity 'Microsoft.Dynamics.CRM.msdyn_channeldefinition'."
    )
    assert org.rows("msdyn_channeldefinition") == {}


def test_a_column_the_emulator_never_declared_but_microsoft_publishes_is_accepted(org: DataverseEmulator) -> None:
    key = created(post(org, "msdyn_channeldefinitions", definition(msdyn_specialconsentlabel="Consent")))
    row = requests.get(
        f"{org.api_url}/msdyn_channeldefinitions({key})",
        params={"$select": "msdyn_specialconsentlabel"},
        headers=H,
        timeout=5,
    )
    assert row.json()["msdyn_specialconsentlabel"] == "Consent"


def test_string_too_long_is_refused_with_0x80044331(org: DataverseEmulator) -> None:
    assert created(post(org, "msdyn_channeldefinitions", definition(msdyn_description="d" * 100)))
    err = error_of(post(org, "msdyn_channeldefinitions", definition(msdyn_description="d" * 101)))
    assert err == {
        "code": "0x80044331",
        "message": "A validation error occurred. The length of the 'msdyn_description' attribute of the "
        "'msdyn_channeldefinition' entity exceeded the maximum allowed length of '100'.",
    }


def test_invalid_option_value_is_refused_with_0x8004431a(org: DataverseEmulator) -> None:
    body = {"schemaname": "cr123_RelayUrl", "displayname": "Relay URL", "type": 100000000}
    assert created(post(org, "environmentvariabledefinitions", body))
    err = error_of(post(org, "environmentvariabledefinitions", {**body, "schemaname": "cr123_Other", "type": 10}))
    assert err["code"] == "0x8004431a"
    assert err["message"] == (
        "A validation error occurred. The value 10 of 'type' on record of type 'environmentvariabledefinition' is "
        "outside the valid range. Accepted Values: 100000000,100000001,100000002,100000003,100000004,100000005"
    )


def test_wrong_value_type_is_refused(org: DataverseEmulator) -> None:
    err = error_of(post(org, "msdyn_channeldefinitions", definition(msdyn_hasinbound="yes")))
    assert err["code"] == "0x80048d19"
    assert err["message"].endswith("Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'.")


def test_column_not_valid_for_update_is_refused(org: DataverseEmulator) -> None:
    publisher = created(
        post(
            org,
            "publishers",
            {
                "uniquename": "contoso",
                "friendlyname": "Contoso",
                "customizationprefix": "cr123",
                "customizationoptionvalueprefix": 12345,
            },
        )
    )
    body = {
        "uniquename": "ContosoSms",
        "friendlyname": "Contoso SMS",
        "version": "1.0.0.0",
        "publisherid@odata.bind": f"/publishers({publisher})",
    }
    solution = created(post(org, "solutions", body))
    assert patch(org, f"solutions({solution})", {"friendlyname": "Renamed"}).status_code == 204
    err = error_of(patch(org, f"solutions({solution})", {"uniquename": "Renamed"}))
    assert err["code"] == "0x80040203"
    assert err["message"] == "The 'uniquename' attribute of the 'solution' entity is not valid for update."


def test_column_not_valid_for_create_is_refused(org: DataverseEmulator) -> None:
    err = error_of(post(org, "msdyn_channeldefinitions", definition(createdon="2026-01-01T00:00:00Z")))
    assert (
        err["message"] == "The 'createdon' attribute of the 'msdyn_channeldefinition' entity is not valid for create."
    )


def test_missing_required_column_on_create_is_refused(org: DataverseEmulator) -> None:
    body = definition()
    del body["msdyn_name"]
    err = error_of(post(org, "msdyn_channeldefinitions", body))
    assert err["code"] == "0x80040203"
    assert "'msdyn_name'" in err["message"] and "msdyn_channeldefinition" in err["message"]
    key = created(post(org, "msdyn_channeldefinitions", definition()))
    assert patch(org, f"msdyn_channeldefinitions({key})", {"msdyn_displayname": "Renamed"}).status_code == 204


def test_lookup_must_be_bound_to_one_of_its_targets(org: DataverseEmulator) -> None:
    channel = created(post(org, "msdyn_channeldefinitions", definition()))
    part = {"msdyn_name": "text", "msdyn_type": 192350000, "msdyn_displayname": "Text"}
    wrong = {**part, "msdyn_ChannelDefinitionId@odata.bind": f"/plugintypes({uuid.uuid4()})"}
    err = error_of(post(org, "msdyn_channelmessageparts", wrong))
    assert err["code"] == "0x80048d19"
    assert "'Microsoft.Dynamics.CRM.plugintype', which is not a target" in err["message"]
    right = {**part, "msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({channel})"}
    assert created(post(org, "msdyn_channelmessageparts", right))


def test_binding_a_column_that_is_not_a_lookup_is_refused(org: DataverseEmulator) -> None:
    err = error_of(post(org, "msdyn_channeldefinitions", definition(**{"msdyn_name@odata.bind": "/plugintypes(x)"})))
    assert err["code"] == "0x80048d19"
    assert "An undeclared property 'msdyn_name'" in err["message"]


def test_checks_apply_inside_batch_change_sets(org: DataverseEmulator) -> None:
    boundary, changeset = "batch_1", "changeset_1"
    parts = []
    for index, body in enumerate((definition(), definition(msdyn_description="d" * 101)), start=1):
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\nPOST /api/data/v9.2/msdyn_channeldefinitions HTTP/1.1\r\n"
            f"Content-Type: application/json\r\n\r\n{json.dumps(body)}\r\n"
        )
    payload = (
        f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        + "".join(parts)
        + f"--{changeset}--\r\n--{boundary}--\r\n"
    )
    resp = requests.post(
        f"{org.api_url}/$batch",
        data=payload.encode(),
        headers={**H, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        timeout=5,
    )
    assert resp.status_code == 200
    assert "HTTP/1.1 400" in resp.text and "0x80044331" in resp.text
    assert org.rows("msdyn_channeldefinition") == {}  # the change set rolled back


def custom_table(dv: DataverseEmulator) -> None:
    label = {"LocalizedLabels": [{"Label": "SMS message", "LanguageCode": 1033}]}
    table = {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": "cr123_smsmessage",
        "DisplayName": label,
        "DisplayCollectionName": label,
        "OwnershipType": "UserOwned",
        "Attributes": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "AttributeType": "String",
                "SchemaName": "cr123_name",
                "IsPrimaryName": True,
                "MaxLength": 100,
                "DisplayName": label,
            }
        ],
    }
    assert post(dv, "EntityDefinitions", table).status_code == 204
    column = {
        "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
        "AttributeType": "Memo",
        "SchemaName": "cr123_body",
        "MaxLength": 20,
        "DisplayName": label,
    }
    assert post(dv, "EntityDefinitions(LogicalName='cr123_smsmessage')/Attributes", column).status_code == 204


def test_custom_table_is_checked_against_the_metadata_the_emulator_holds(org: DataverseEmulator) -> None:
    custom_table(org)
    assert created(post(org, "cr123_smsmessages", {"cr123_name": "Welcome", "cr123_body": "Hi"}))
    err = error_of(post(org, "cr123_smsmessages", {"cr123_name": "Welcome", "cr123_subject": "x"}))
    assert err["code"] == "0x80048d19"
    assert (
        "Invalid property 'cr123_subject' was found in entity 'Microsoft.Dynamics.CRM.cr123_smsmessage'."
        in (err["message"])
    )
    err = error_of(post(org, "cr123_smsmessages", {"cr123_name": "Welcome", "cr123_body": "b" * 21}))
    assert err["code"] == "0x80044331"
    assert (
        "'cr123_body' attribute of the 'cr123_smsmessage' entity exceeded the maximum allowed length of '20'"
        in (err["message"])
    )


def test_the_configured_reference_data_is_what_the_emulator_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tmp_path / "dataverse-metadata" / "tables"
    shutil.copytree(dataverse_tables_dir(), tables)
    path = tables / "msdyn_channeldefinition.json"
    data = json.loads(path.read_text())
    del data["columns"]["msdyn_description"]
    path.write_text(json.dumps(data))
    monkeypatch.delenv(ENV_DATAVERSE_METADATA, raising=False)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    with DataverseEmulator(token="t0k3n") as dv:
        dv.enable_rtj()
        err = error_of(post(dv, "msdyn_channeldefinitions", definition()))
        assert "Invalid property 'msdyn_description'" in err["message"]
        body = definition()
        del body["msdyn_description"]
        assert created(post(dv, "msdyn_channeldefinitions", body))


def test_absent_reference_data_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DATAVERSE_METADATA, raising=False)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "nowhere"))
    with pytest.raises(ReferenceDataMissing, match=r"Dataverse table metadata not found at .*CHANNEL_REFERENCE_DATA"):
        DataverseEmulator(token="t0k3n")
