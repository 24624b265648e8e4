"""``channel provision --rtj``: exact request bodies, idempotency, dry run, SMS vs Custom, missing plug-in / roles."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from provisioning.gateway import MASK
from provisioning.rtj_definition import MESSAGE_PART_TEXT, RTJ_READ_ROLES, RtjChannel
from shared.domain.rtj import OutboundPayload

from .conftest import (
    ENTRA,
    PLUGIN_TYPE_ID,
    RELAY_CLIENT_ID,
    RELAY_TENANT_ID,
    RELAY_URL,
    RTJ_ARGS,
    SAS_KEY,
    TOKEN_SCOPE,
    RunResult,
)

Run = Callable[..., RunResult]
SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "provisioning" / "dry_run_rtj_empty_org.txt"
SECRET = "s3cr3t-value-that-is-long-enough-0123"
KV = ["--relay-url", RELAY_URL, *ENTRA]  # the recommended relay authentication: entra


def writes(org: DataverseEmulator) -> list[tuple[str, str]]:
    return [(op.method, op.path) for op in org.operations if op.method != "GET"]


def bodies(org: DataverseEmulator, method: str, path: str) -> list[Any]:
    return [op.body for op in org.operations if op.method == method and op.path == path]


def body_of(org: DataverseEmulator, method: str, path: str) -> Any:
    found = bodies(org, method, path)
    assert len(found) == 1, (method, path, found)
    return found[0]


def only_row(org: DataverseEmulator, table: str, **match: Any) -> tuple[str, dict[str, Any]]:
    rows = [(k, r) for k, r in org.rows(table).items() if all(r.get(c) == v for c, v in match.items())]
    assert len(rows) == 1, rows
    return rows[0]


def main_form(org: DataverseEmulator, table: str) -> str:
    return only_row(org, "systemform", objecttypecode=table, type=2)[0]


def privilege(org: DataverseEmulator, name: str) -> str:
    return only_row(org, "privilege", name=name)[0]


def test_sms_channel_is_created_with_the_exact_requests(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run(*KV, base=RTJ_ARGS)
    assert code == 0, out
    channel = RtjChannel(prefix="cr123")
    definition_id = channel.channel_definition_id
    cxp, extensible = (rtj_org.role_id(name) for name in RTJ_READ_ROLES)
    add = "/Microsoft.Dynamics.CRM.AddPrivilegesRole"
    assembly_id = rtj_org.get_row("plugintype", PLUGIN_TYPE_ID)["_pluginassemblyid_value"]  # type: ignore[index]
    assert writes(rtj_org) == [
        ("POST", "publishers"),
        ("POST", "solutions"),
        ("POST", "customapis"),
        ("POST", "environmentvariabledefinitions"),
        ("POST", "environmentvariablevalues"),
        ("POST", "environmentvariabledefinitions"),
        ("POST", "environmentvariablevalues"),
        ("POST", "environmentvariabledefinitions"),
        ("POST", "managedidentities"),
        ("PATCH", f"pluginassemblies({assembly_id})"),
        ("POST", "EntityDefinitions"),
        ("POST", "EntityDefinitions"),
        ("POST", "RelationshipDefinitions"),
        ("POST", "RelationshipDefinitions"),
        ("POST", "PublishXml"),
        ("POST", "msdyn_channeldefinitions"),
        ("POST", "msdyn_channelmessageparts"),
        ("POST", f"roles({cxp}){add}"),
        ("POST", f"roles({extensible}){add}"),
    ]
    assert all(op.status < 300 for op in rtj_org.operations if op.method != "GET")

    # the outbound custom API, deep-inserted with its String parameter and property, bound to the relay plug-in
    assert body_of(rtj_org, "POST", "customapis") == {
        "uniquename": "cr123_ChannelOutbound",
        "name": "cr123_ChannelOutbound",
        "displayname": "Custom SMS: outbound",
        "description": channel.custom_api_columns()["description"],
        "bindingtype": 0,
        "isfunction": False,
        "allowedcustomprocessingsteptype": 0,
        "PluginTypeId@odata.bind": f"/plugintypes({PLUGIN_TYPE_ID})",
        "CustomAPIRequestParameters": [
            {
                "uniquename": "payload",
                "name": "cr123_ChannelOutbound.payload",
                "displayname": "Payload",
                "description": channel.payload_parameter_body()["description"],
                "type": 10,
                "isoptional": False,
            }
        ],
        "CustomAPIResponseProperties": [
            {
                "uniquename": "response",
                "name": "cr123_ChannelOutbound.response",
                "displayname": "Response",
                "description": channel.response_property_body()["description"],
                "type": 10,
            }
        ],
    }
    api_id, api = only_row(rtj_org, "customapi")
    assert api["_plugintypeid_value"] == PLUGIN_TYPE_ID
    assert only_row(rtj_org, "customapirequestparameter")[1]["_customapiid_value"] == api_id
    assert only_row(rtj_org, "customapiresponseproperty")[1]["type"] == 10

    # the relay plug-in's three Text environment variables: URL, token scope (entra), secret (no value in entra mode)
    url_def, scope_def, secret_def = bodies(rtj_org, "POST", "environmentvariabledefinitions")
    assert url_def == {
        "schemaname": "cr123_ChannelRelayUrl",
        "displayname": "Channel relay URL",
        "description": "The Function app's real-time journeys endpoint: https://<app>/api/rtj/outbound",
        "type": 100000000,
    }
    assert [(d["schemaname"], d["type"]) for d in (scope_def, secret_def)] == [
        ("cr123_ChannelRelayScope", 100000000),
        ("cr123_ChannelRelaySecret", 100000000),
    ]
    url_id, _ = only_row(rtj_org, "environmentvariabledefinition", schemaname="cr123_ChannelRelayUrl")
    scope_id, _ = only_row(rtj_org, "environmentvariabledefinition", schemaname="cr123_ChannelRelayScope")
    assert bodies(rtj_org, "POST", "environmentvariablevalues") == [
        {
            "schemaname": "cr123_ChannelRelayUrl",
            "value": RELAY_URL,
            "EnvironmentVariableDefinitionId@odata.bind": f"/environmentvariabledefinitions({url_id})",
        },
        {
            "schemaname": "cr123_ChannelRelayScope",
            "value": TOKEN_SCOPE,
            "EnvironmentVariableDefinitionId@odata.bind": f"/environmentvariabledefinitions({scope_id})",
        },
    ]

    # the managed identity record (Microsoft's "Set up Power Platform managed identity"), bound to the assembly
    identity_id, _ = only_row(rtj_org, "managedidentity")
    assert body_of(rtj_org, "POST", "managedidentities") == {
        "managedidentityid": identity_id,
        "name": "cr123 channel relay",
        "applicationid": RELAY_CLIENT_ID,
        "tenantid": RELAY_TENANT_ID,
        "credentialsource": 2,
        "subjectscope": 1,
        "version": 2,
    }
    assert body_of(rtj_org, "PATCH", f"pluginassemblies({assembly_id})") == {
        "managedidentityid@odata.bind": f"/managedidentities({identity_id})"
    }
    assert rtj_org.get_row("pluginassembly", assembly_id)["_managedidentityid_value"] == identity_id  # type: ignore[index]
    assert "RTJ_AUTH_MODE=entra" in out and f"RTJ_TOKEN_CLIENT_ID={RELAY_CLIENT_ID}" in out
    assert "federated identity credential" in out

    # the extended tables (all lower case) and their msdyn_extendedentityid relationships
    instance, account = channel.extended_tables
    assert bodies(rtj_org, "POST", "EntityDefinitions") == [instance.table_body(), account.table_body()]
    assert instance.table_body()["SchemaName"] == "cr123_channelinstance"
    assert account.table_body()["SchemaName"] == "cr123_channelinstanceaccount"
    relationships = bodies(rtj_org, "POST", "RelationshipDefinitions")
    assert relationships == [instance.relationship_body(), account.relationship_body()]
    assert relationships[0]["SchemaName"] == "msdyn_ChannelInstance_extendedentityid_cr123_channelinstance"
    assert relationships[0]["ReferencingEntity"] == "msdyn_channelinstance"
    assert relationships[1]["ReferencingEntity"] == "msdyn_channelinstanceaccount"
    assert {r["Lookup"]["SchemaName"] for r in relationships} == {"msdyn_extendedentityId"}
    assert {r["Lookup"]["@odata.type"] for r in relationships} == {"Microsoft.Dynamics.CRM.LookupAttributeMetadata"}
    targets = {(r["ReferencingEntity"], r["ReferencedEntity"]) for r in rtj_org.relationships}
    assert ("msdyn_channelinstance", "cr123_channelinstance") in targets
    assert ("msdyn_channelinstanceaccount", "cr123_channelinstanceaccount") in targets
    assert rtj_org.published == [
        {
            "entities": [
                "cr123_channelinstance",
                "cr123_channelinstanceaccount",
                "msdyn_channelinstance",
                "msdyn_channelinstanceaccount",
            ],
            "webresources": [],
        }
    ]

    # the channel definition (stable id) and its one message part
    assert body_of(rtj_org, "POST", "msdyn_channeldefinitions") == {
        "msdyn_channeldefinitionid": definition_id,
        "msdyn_name": "Custom SMS",
        "msdyn_displayname": "Custom SMS",
        "msdyn_description": "Real-time journeys SMS channel, sent by its Function app",
        "msdyn_channeltype": "SMS",
        "msdyn_outboundendpointurltemplate": "/cr123_ChannelOutbound",
        "msdyn_hasdeliveryreceipt": True,
        "msdyn_hasinbound": True,
        "msdyn_supportsaccount": True,
        "msdyn_channeldefinitionexternalentity": "cr123_channelinstance",
        "msdyn_channeldefinitionexternalformid": main_form(rtj_org, "cr123_channelinstance"),
        "msdyn_channeldefinitionaccountexternalentity": "cr123_channelinstanceaccount",
        "msdyn_channeldefinitionaccountexternalformid": main_form(rtj_org, "cr123_channelinstanceaccount"),
    }
    assert body_of(rtj_org, "POST", "msdyn_channelmessageparts") == {
        "msdyn_channelmessagepartid": channel.message_part_id,
        "msdyn_name": "text",
        "msdyn_displayname": "Text",
        "msdyn_description": "Text of the message",
        "msdyn_type": 192350000,
        "msdyn_isrequired": True,
        "msdyn_maxlength": 1600,
        "msdyn_ChannelDefinitionId@odata.bind": f"/msdyn_channeldefinitions({definition_id})",
    }

    # Read (Organization) on both extended tables for both roles
    read_instance = privilege(rtj_org, "prvReadcr123_channelinstance")
    read_account = privilege(rtj_org, "prvReadcr123_channelinstanceaccount")
    expected = {
        "Privileges": [
            {"Depth": "Global", "PrivilegeId": read_instance, "BusinessUnitId": rtj_org.business_unit_id},
            {"Depth": "Global", "PrivilegeId": read_account, "BusinessUnitId": rtj_org.business_unit_id},
        ]
    }
    for role in (cxp, extensible):
        assert body_of(rtj_org, "POST", f"roles({role}){add}") == expected
        assert rtj_org.role_privileges[role] == {read_instance: 3, read_account: 3}

    # every create of a component carried the solution header
    with_header = [
        unquote(r.path.split("/api/data/v9.2/", 1)[1])
        for r in rtj_org.requests
        if r.method == "POST"
        and {k.lower(): v for k, v in r.headers.items()}.get("mscrm.solutionuniquename") == "ContosoSmsChannel"
    ]
    assert with_header == [
        p for m, p in writes(rtj_org)[2:] if m == "POST" and p != "PublishXml" and not p.startswith("roles(")
    ]

    assert "outbound custom API /cr123_ChannelOutbound → plug-in ChannelRelay.OutboundRelayPlugin: bound" in out
    assert f"channel definition {definition_id} (SMS)" in out
    assert "MESSAGE_BODY_COLUMN" not in out  # no outbound-marketing part was run
    assert not [op for op in rtj_org.operations if op.path.startswith(("serviceendpoints", "webresourceset"))]


@pytest.mark.parametrize("channel_type", ["sms", "custom"])
def test_second_run_makes_zero_writes(rtj_org: DataverseEmulator, run: Run, channel_type: str) -> None:
    assert run(*KV, "--rtj-channel-type", channel_type, base=RTJ_ARGS)[0] == 0
    rtj_org.reset()
    code, out = run(*KV, "--rtj-channel-type", channel_type, base=RTJ_ARGS)
    assert code == 0, out
    assert writes(rtj_org) == []
    assert "0 changed: nothing to do" in out
    rtj_org.reset()
    code, out = run("--rtj-channel-type", channel_type, base=RTJ_ARGS)  # no values: existing ones stay
    assert (code, writes(rtj_org)) == (0, [])
    assert "has no value" not in out


def test_custom_channel_differs_from_sms(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run(*KV, "--rtj-channel-type", "custom", base=RTJ_ARGS)
    assert code == 0, out
    channel = RtjChannel(prefix="cr123", channel_type="custom")
    assert channel.channel_definition_id != RtjChannel(prefix="cr123").channel_definition_id
    assert [b["SchemaName"] for b in bodies(rtj_org, "POST", "EntityDefinitions")] == ["cr123_channelinstance"]
    assert [b["ReferencingEntity"] for b in bodies(rtj_org, "POST", "RelationshipDefinitions")] == [
        "msdyn_channelinstance"
    ]
    definition = body_of(rtj_org, "POST", "msdyn_channeldefinitions")
    assert definition["msdyn_channeltype"] == "Custom"
    assert definition["msdyn_hasinbound"] is False
    assert definition["msdyn_supportsaccount"] is False
    assert definition["msdyn_hasdeliveryreceipt"] is True
    assert "msdyn_channeldefinitionaccountexternalentity" not in definition
    assert definition["msdyn_displayname"] == "Custom messaging"
    read_instance = privilege(rtj_org, "prvReadcr123_channelinstance")
    for role in RTJ_READ_ROLES:
        assert rtj_org.role_privileges[rtj_org.role_id(role)] == {read_instance: 3}
    assert "(Custom)" in out


def test_dry_run_on_an_empty_org_shows_the_full_rtj_sequence(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run(*KV, "--dry-run", base=RTJ_ARGS)
    assert code == 0, out
    assert writes(rtj_org) == []
    normalised = out.replace(rtj_org.url, "{DATAVERSE_URL}")
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(normalised, encoding="utf-8")
    assert normalised == SNAPSHOT.read_text(encoding="utf-8")
    requests = [
        line.split()[0] + " " + line.split()[1].split("?")[0]
        for line in out.splitlines()
        if re.match(r"^(GET|POST|PATCH) ", line)
    ]
    assert sum(r.startswith("POST") for r in requests) == 18
    assert "Tile XML" not in out


def test_plugin_not_registered_creates_the_api_unbound_and_a_rerun_binds_it(org: DataverseEmulator, run: Run) -> None:
    org.enable_rtj()
    code, out = run(*KV, base=RTJ_ARGS)
    assert code == 0, out
    assert "PluginTypeId@odata.bind" not in body_of(org, "POST", "customapis")
    api_id, api = only_row(org, "customapi")
    assert api.get("_plugintypeid_value") is None
    assert "The plug-in type ChannelRelay.OutboundRelayPlugin is not registered" in out
    assert "NOT bound yet" in out

    org.add_plugin_type("ChannelRelay.OutboundRelayPlugin", PLUGIN_TYPE_ID)  # the assembly gets registered
    org.reset()
    code, out = run(base=RTJ_ARGS)
    assert code == 0, out
    assert writes(org) == [("PATCH", f"customapis({api_id})")]
    assert body_of(org, "PATCH", f"customapis({api_id})") == {
        "PluginTypeId@odata.bind": f"/plugintypes({PLUGIN_TYPE_ID})"
    }
    assert only_row(org, "customapi")[1]["_plugintypeid_value"] == PLUGIN_TYPE_ID
    assert ": bound" in out


def test_missing_role_stops_the_run_before_anything_is_written(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    org.enable_rtj(roles=["Cxp Channel Definitions Services User"])
    org.add_plugin_type("ChannelRelay.OutboundRelayPlugin", PLUGIN_TYPE_ID)
    assert run(*KV, base=RTJ_ARGS)[0] == 1
    assert writes(org) == []
    err = capsys.readouterr().err
    assert "security role 'Marketing Services User Extensible' not found" in err
    assert "Read on cr123_channelinstance, cr123_channelinstanceaccount" in err
    assert run(*KV, "--dry-run", base=RTJ_ARGS)[0] == 1  # the dry run fails the same way


def test_role_names_are_matched_as_microsoft_spells_them(org: DataverseEmulator, run: Run) -> None:
    spellings = ["cxp channel definitions service user", "Marketing Service user extensible role"]
    org.enable_rtj(roles=spellings)
    org.add_plugin_type("ChannelRelay.OutboundRelayPlugin", PLUGIN_TYPE_ID)
    code, out = run(*KV, base=RTJ_ARGS)
    assert code == 0, out
    read_instance = privilege(org, "prvReadcr123_channelinstance")
    for name in spellings:
        assert read_instance in org.role_privileges[org.role_id(name)]
        assert f"to role '{name}'" in out
    assert f"Read on them for: {', '.join(spellings)}" in out


def test_lower_depth_privilege_is_raised_to_organization(rtj_org: DataverseEmulator, run: Run) -> None:
    assert run(*KV, base=RTJ_ARGS)[0] == 0
    cxp = rtj_org.role_id(RTJ_READ_ROLES[0])
    read_account = privilege(rtj_org, "prvReadcr123_channelinstanceaccount")
    rtj_org.role_privileges[cxp][read_account] = 0  # someone lowered it to User
    rtj_org.reset()
    assert run(base=RTJ_ARGS)[0] == 0
    path = f"roles({cxp})/Microsoft.Dynamics.CRM.AddPrivilegesRole"
    assert writes(rtj_org) == [("POST", path)]
    assert [p["PrivilegeId"] for p in body_of(rtj_org, "POST", path)["Privileges"]] == [read_account]


def test_text_secret_is_masked_compared_and_updated(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run("--relay-url", RELAY_URL, "--relay-secret", SECRET, "--dry-run", base=RTJ_ARGS)
    assert code == 0
    assert SECRET not in out
    assert f'"value": "{MASK}"' in out
    code, out = run("--relay-url", RELAY_URL, "--relay-secret", SECRET, base=RTJ_ARGS)
    assert code == 0 and SECRET not in out
    _, definition = only_row(rtj_org, "environmentvariabledefinition", schemaname="cr123_ChannelRelaySecret")
    assert definition["type"] == 100000000
    value_id, value = only_row(rtj_org, "environmentvariablevalue", schemaname="cr123_ChannelRelaySecret")
    assert value["value"] == SECRET
    assert "Text variable" in out
    rtj_org.reset()
    assert run("--relay-secret", SECRET, base=RTJ_ARGS)[0] == 0
    assert writes(rtj_org) == []
    rotated = SECRET + "-rotated"
    code, out = run("--relay-secret", rotated, base=RTJ_ARGS)
    assert code == 0 and rotated not in out
    assert writes(rtj_org) == [("PATCH", f"environmentvariablevalues({value_id})")]
    assert body_of(rtj_org, "PATCH", f"environmentvariablevalues({value_id})") == {"value": rotated}


@pytest.mark.parametrize("mode", [[], ["--relay-secret", SECRET], ENTRA])
def test_a_key_vault_secret_variable_is_refused(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str], mode: list[str]
) -> None:
    """Earlier versions made <prefix>_ChannelRelaySecret a Key Vault-backed Secret variable; plug-ins cannot read it."""
    rtj_org.add_row(
        "environmentvariabledefinition",
        "0f0f0f0f-0000-4000-8000-000000000002",
        {"schemaname": "cr123_ChannelRelaySecret", "displayname": "Channel relay secret", "type": 100000005},
    )
    code, _ = run(*mode, base=RTJ_ARGS)
    assert code == 1
    err = capsys.readouterr().err
    assert "cr123_ChannelRelaySecret exists as Secret (Azure Key Vault)" in err and "delete it" in err
    paths = [p for _, p in writes(rtj_org)]
    assert "EntityDefinitions" not in paths and "managedidentities" not in paths  # stopped at the variable
    assert not [b for b in bodies(rtj_org, "POST", "environmentvariablevalues") if "Secret" in b["schemaname"]]


def test_values_not_given_are_printed_as_manual_steps(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run(base=RTJ_ARGS)
    assert code == 0, out
    assert bodies(rtj_org, "POST", "environmentvariablevalues") == []
    assert "cr123_ChannelRelayUrl has no value: run again with --relay-url" in out
    assert "Neither cr123_ChannelRelayScope nor cr123_ChannelRelaySecret has a value" in out
    assert "--relay-auth entra" in out
    assert not rtj_org.rows("managedidentity")


def test_rtj_with_outbound_marketing_in_one_run(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run("--sas-key", SAS_KEY, "--rtj", *KV)
    assert code == 0, out
    paths = [p for _, p in writes(rtj_org)]
    assert paths.index("sdkmessageprocessingsteps") < paths.index("customapis")
    assert "MESSAGE_BODY_COLUMN=cr123_body" in out and "Real-time journeys channel:" in out
    rtj_org.reset()
    assert run("--rtj")[0] == 0
    assert writes(rtj_org) == []


def test_outbound_steps_need_the_service_bus_values(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("--rtj", base=["--prefix", "cr123", "--solution", "ContosoSmsChannel"])
    assert code == 1
    assert "need --namespace, --queue, --sas-key-name (or pass --rtj-only)" in capsys.readouterr().err
    assert writes(rtj_org) == []


def test_immutable_custom_api_columns_stop_the_command(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    rtj_org.add_row(
        "customapi",
        "0f0f0f0f-0000-4000-8000-000000000001",
        {
            "uniquename": "cr123_ChannelOutbound",
            "name": "x",
            "displayname": "x",
            "bindingtype": 0,
            "isfunction": True,
            "allowedcustomprocessingsteptype": 0,
        },
    )
    code, _ = run(*KV, base=RTJ_ARGS)
    assert code == 1
    assert "cannot be changed after creation" in capsys.readouterr().err


def test_base_channel_tables_missing_means_rtj_is_not_installed(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    org.enable_rtj()
    # an org without real-time journeys has no msdyn_channelinstance: the relationship read is a 404
    org.inject_error("GET", r"ManyToOneRelationships", status=404, code="0x80060888", message="not found")
    code, _ = run(*KV, base=RTJ_ARGS)
    assert code == 1
    assert "real-time journeys (Customer Insights - Journeys) is not installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--relay-url", "http://example.com/x"], "--relay-url must be https://"),
        (["--relay-secret", "short"], "at least 24"),
        (["--rtj-api-name", "other_Api"], "'cr123_<Name>'"),
        (
            ["--relay-auth", "entra"],
            "--relay-auth entra needs --relay-token-scope, --relay-identity-client-id, --relay-identity-tenant-id",
        ),
        (["--relay-token-scope", TOKEN_SCOPE], "--relay-auth entra needs --relay-identity-client-id"),
        ([*ENTRA, "--relay-secret", SECRET], "--relay-secret is for --relay-auth secret"),
        (["--relay-auth", "secret"], "--relay-auth secret needs --relay-secret"),
        (
            ["--relay-auth", "secret", "--relay-secret", SECRET, "--relay-token-scope", TOKEN_SCOPE],
            "belong to --relay-auth entra",
        ),
        ([*ENTRA[:-2], "--relay-identity-tenant-id", "contoso"], "--relay-identity-tenant-id must be a GUID"),
        (
            [*ENTRA[:2], "--relay-token-scope", "api://x", *ENTRA[4:]],
            "must be the app's token scope ending in /.default",
        ),
        (["--rtj-display-name", "x" * 91], "--rtj-display-name must be 1-90 characters"),
    ],
)
def test_invalid_rtj_options_are_refused(
    run: Run, capsys: pytest.CaptureFixture[str], args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RTJ_OUTBOUND_SECRET", raising=False)  # else --relay-auth secret takes it from there
    assert run(*args, base=RTJ_ARGS)[0] == 1
    assert message in capsys.readouterr().err


def test_relay_options_need_rtj(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--relay-url", RELAY_URL, "--relay-auth", "secret", "--sas-key", SAS_KEY)[0] == 1
    assert "--relay-url, --relay-auth need --rtj" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the Key Vault-backed variable is gone: plug-ins cannot read one
        run("--relay-secret-from-key-vault", "/subscriptions/x", base=RTJ_ARGS)


def test_message_part_name_is_what_the_app_reads() -> None:
    payload = OutboundPayload(
        channel_definition_id=RtjChannel(prefix="cr123").channel_definition_id,
        request_id="r",
        idempotency_id=None,
        sender="+15551234567",
        to="+15557654321",
        message={MESSAGE_PART_TEXT: "hello", "other": "x"},
        journey_id=None,
        user_id=None,
        user_entity_type=None,
        is_test_send=False,
    )
    assert payload.text() == "hello"
    assert RtjChannel(prefix="cr123").message_part_columns()["msdyn_name"] == MESSAGE_PART_TEXT == "text"
