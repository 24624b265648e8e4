"""``channel provision`` against the Dataverse emulator: exact request bodies, idempotency, dry run."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from cli.main import main as channel_main
from devtools.emulators.dataverse import SDK_MESSAGE_CREATE_ID, DataverseEmulator
from provisioning.definition import ChannelDefinition
from provisioning.gateway import MASK

from .conftest import SAS_KEY, RunResult

Run = Callable[..., RunResult]
SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "provisioning" / "dry_run_empty_org.txt"
ACTIVITY = "msdyncrm_customerjourneycustomchannelactivity"
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def writes(org: DataverseEmulator) -> list[tuple[str, str]]:
    return [(op.method, op.path) for op in org.operations if op.method != "GET"]


def body_of(org: DataverseEmulator, method: str, path: str) -> Any:
    found = [op.body for op in org.operations if op.method == method and op.path == path]
    assert len(found) == 1, (method, path, found)
    return found[0]


def only_row(org: DataverseEmulator, table: str) -> tuple[str, dict[str, Any]]:
    rows = org.rows(table)
    assert len(rows) == 1, rows
    return next(iter(rows.items()))


def test_first_run_creates_everything_with_the_exact_requests(org: DataverseEmulator, run: Run) -> None:
    code, out = run("--sas-key", SAS_KEY)
    assert code == 0, out
    table_path = "EntityDefinitions(LogicalName='cr123_smsmessage')"
    assert writes(org) == [
        ("POST", "publishers"),
        ("POST", "solutions"),
        ("POST", "EntityDefinitions"),
        ("POST", f"{table_path}/Attributes"),
        ("POST", "webresourceset"),
        ("POST", "PublishXml"),
        ("POST", "serviceendpoints"),
        ("POST", "sdkmessageprocessingsteps"),
    ]
    assert all(op.status < 300 for op in org.operations if op.method != "GET")
    definition = ChannelDefinition(prefix="cr123")

    publisher_id, _ = only_row(org, "publisher")
    assert body_of(org, "POST", "publishers") == {
        "uniquename": "ContosoSmsChannelPublisher",
        "friendlyname": "ContosoSmsChannelPublisher",
        "customizationprefix": "cr123",
        "customizationoptionvalueprefix": body_of(org, "POST", "publishers")["customizationoptionvalueprefix"],
    }
    assert 10000 <= body_of(org, "POST", "publishers")["customizationoptionvalueprefix"] <= 99999
    assert body_of(org, "POST", "solutions") == {
        "uniquename": "ContosoSmsChannel",
        "friendlyname": "ContosoSmsChannel",
        "version": "1.0.0.0",
        "publisherid@odata.bind": f"/publishers({publisher_id})",
    }
    assert body_of(org, "POST", "EntityDefinitions") == definition.table_body()
    assert body_of(org, "POST", f"{table_path}/Attributes") == definition.body_column_body()

    resource_id, resource = only_row(org, "webresource")
    tile = base64.b64decode(resource["content"]).decode()
    assert body_of(org, "POST", "webresourceset") == {
        "name": "cr123_SmsCustomerJourneyDesignerTileConfig.xml",
        "displayname": "SMS custom channel tile",
        "webresourcetype": 4,
        "content": resource["content"],
    }
    assert "<EntitySetName>cr123_smsmessages</EntitySetName>" in tile
    lookup_view = next(k for k, r in org.rows("savedquery").items() if r["querytype"] == 64)
    assert f"<LookupViewId>{lookup_view.upper()}</LookupViewId>" in tile
    assert body_of(org, "POST", "PublishXml") == {
        "ParameterXml": "<importexportxml><entities><entity>cr123_smsmessage</entity></entities>"
        f"<webresources><webresource>{{{resource_id}}}</webresource></webresources></importexportxml>"
    }
    assert org.published == [{"entities": ["cr123_smsmessage"], "webresources": [resource_id]}]

    endpoint_id, endpoint = only_row(org, "serviceendpoint")
    assert body_of(org, "POST", "serviceendpoints") == {
        "name": "cr123_sms_activities",
        "description": "Custom channel activities of ContosoSmsChannel to Service Bus queue activities",
        "contract": 2,
        "connectionmode": 1,
        "authtype": 2,
        "namespaceformat": 2,
        "namespaceaddress": "sb://sb-contoso.servicebus.windows.net/",
        "solutionnamespace": "sb-contoso",
        "path": "activities",
        "saskeyname": "dataverse-send",
        "messageformat": 2,
        "userclaim": 1,
        "saskey": SAS_KEY,
    }
    assert endpoint["issaskeyset"] is True
    filter_id = next(iter(org.rows("sdkmessagefilter")))
    assert body_of(org, "POST", "sdkmessageprocessingsteps") == {
        "name": f"cr123_sms_activities: Create of {ACTIVITY}",
        "description": "Posts each new custom channel activity to the channel's Service Bus queue (JSON)",
        "mode": 1,
        "stage": 40,
        "rank": 1,
        "supporteddeployment": 0,
        "asyncautodelete": True,
        "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
        "sdkmessageid@odata.bind": f"/sdkmessages({SDK_MESSAGE_CREATE_ID})",
        "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
    }
    step_id, step = only_row(org, "sdkmessageprocessingstep")
    assert step["_eventhandler_value"] == endpoint_id

    # every create of a solution component carried the solution header, and landed in the solution
    solution_posts = [
        unquote(r.path.split("/api/data/v9.2/", 1)[1])
        for r in org.requests
        if r.method == "POST"
        and {k.lower(): v for k, v in r.headers.items()}.get("mscrm.solutionuniquename") == "ContosoSmsChannel"
    ]
    assert solution_posts == [
        "EntityDefinitions",
        "EntityDefinitions(LogicalName='cr123_smsmessage')/Attributes",
        "webresourceset",
        "serviceendpoints",
        "sdkmessageprocessingsteps",
    ]
    types = sorted(t for t, _ in org.solution_components("ContosoSmsChannel"))
    assert types == [1, 2, 61, 92, 95]  # table (with its primary name column), body column, tile, step, endpoint
    assert (95, endpoint_id) in org.solution_components("ContosoSmsChannel")
    assert (92, step_id) in org.solution_components("ContosoSmsChannel")

    assert "MESSAGE_BODY_COLUMN=cr123_body" in out
    assert "COMPLIANCE_COLUMN=donotphone" in out
    assert "AZURE_CLIENT_ID" in out
    assert SAS_KEY not in out


def test_second_run_makes_zero_writes_and_needs_no_key(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    org.reset()
    code, out = run()  # no key source at all: the endpoint already has one
    assert code == 0, out
    assert writes(org) == []
    assert org.operations, "the second run must still read and compare"
    assert "0 changed: nothing to do" in out


def test_rotate_key_patches_only_the_key(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    endpoint_id, _ = only_row(org, "serviceendpoint")
    org.reset()
    code, out = run("--sas-key", "bmV3LWtleQ==", "--rotate-key")
    assert code == 0, out
    assert writes(org) == [("PATCH", f"serviceendpoints({endpoint_id})")]
    assert body_of(org, "PATCH", f"serviceendpoints({endpoint_id})") == {"saskey": "bmV3LWtleQ=="}
    assert "bmV3LWtleQ==" not in out


def test_drift_is_repaired_with_a_minimal_patch(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    endpoint_id, endpoint = only_row(org, "serviceendpoint")
    org.add_row("serviceendpoint", endpoint_id, {**endpoint, "path": "old-queue", "messageformat": 1})
    step_id, step = only_row(org, "sdkmessageprocessingstep")
    org.add_row("sdkmessageprocessingstep", step_id, {**step, "asyncautodelete": False})
    org.reset()
    code, out = run()
    assert code == 0, out
    assert writes(org) == [
        ("PATCH", f"serviceendpoints({endpoint_id})"),
        ("PATCH", f"sdkmessageprocessingsteps({step_id})"),
    ]
    assert body_of(org, "PATCH", f"serviceendpoints({endpoint_id})") == {"path": "activities", "messageformat": 2}
    assert body_of(org, "PATCH", f"sdkmessageprocessingsteps({step_id})") == {"asyncautodelete": True}


def test_changed_tile_is_reuploaded_and_published(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    resource_id, resource = only_row(org, "webresource")
    org.add_row("webresource", resource_id, {**resource, "content": base64.b64encode(b"<LibraryTile/>").decode()})
    org.reset()
    assert run()[0] == 0
    assert writes(org) == [("PATCH", f"webresourceset({resource_id})"), ("POST", "PublishXml")]
    assert set(body_of(org, "PATCH", f"webresourceset({resource_id})")) == {"content"}
    assert org.published == [{"entities": [], "webresources": [resource_id]}]


def test_quick_view_form_goes_into_the_tile_when_it_exists(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    form = "404ba31b-2c12-4233-8711-804b78de1267"
    org.add_row("systemform", form, {"name": "SMS quick view", "objecttypecode": "cr123_smsmessage", "type": 6})
    code, out = run()
    assert code == 0
    _, resource = only_row(org, "webresource")
    assert f"<QuickViewFormId>{form.upper()}</QuickViewFormId>" in base64.b64decode(resource["content"]).decode()
    assert "no quick view form" not in out


def assert_snapshot(path: Path, text: str) -> None:
    """``text`` equals the snapshot file (``UPDATE_SNAPSHOTS=1`` rewrites it)."""
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def dry_run_text(out: str, url: str) -> str:
    """A dry run's output without what differs between runs (the emulator's URL, the org's message ids)."""
    normalised = out.replace(url, "{DATAVERSE_URL}")
    normalised = re.sub(rf"_sdkmessageid_value eq {GUID}", "_sdkmessageid_value eq {CREATE_MESSAGE_ID}", normalised)
    normalised = re.sub(rf"sdkmessages\({GUID}\)", "sdkmessages({CREATE_MESSAGE_ID})", normalised)
    return re.sub(rf"sdkmessagefilters\({GUID}\)", "sdkmessagefilters({FILTER_ID})", normalised)


def test_dry_run_prints_the_full_sequence_and_writes_nothing(org: DataverseEmulator, run: Run) -> None:
    code, out = run("--key-vault", "kv-contoso", "--secret-name", "dataverse-sb", "--dry-run")
    assert code == 0, out
    assert writes(org) == []
    assert_snapshot(SNAPSHOT, dry_run_text(out, org.url))
    assert f'"saskey": "{MASK}"' in out


def test_dry_run_on_a_provisioned_org_shows_only_reads(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    code, out = run("--dry-run", "--rotate-key", "--sas-key", SAS_KEY)
    assert code == 0
    lines = [line for line in out.splitlines() if re.match(r"^(GET|POST|PATCH) ", line)]
    assert [line.split()[0] for line in lines if not line.startswith("GET")] == ["PATCH"]
    assert SAS_KEY not in out
    assert f'"saskey": "{MASK}"' in out


def test_app_user_is_created_once(org: DataverseEmulator, run: Run) -> None:
    client_id = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"
    code, out = run("--sas-key", SAS_KEY, "--create-app-user", client_id)
    assert code == 0, out
    assert body_of(org, "POST", "systemusers") == {
        "applicationid": client_id,
        "businessunitid@odata.bind": f"/businessunits({org.business_unit_id})",
    }
    org.reset()
    assert run("--create-app-user", client_id)[0] == 0
    assert writes(org) == []


def test_existing_solution_with_another_prefix_is_refused(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    publisher = org.add_row("publisher", "a0a0a0a0-0000-4000-8000-000000000001", {"customizationprefix": "new"})
    org.add_row(
        "solution",
        "a0a0a0a0-0000-4000-8000-000000000002",
        {"uniquename": "ContosoSmsChannel", "ismanaged": False, "_publisherid_value": publisher},
    )
    code, _ = run("--sas-key", SAS_KEY)
    assert code == 1
    assert "prefix 'new', not 'cr123'" in capsys.readouterr().err
    assert writes(org) == []


def test_compliance_column_must_be_boolean(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    org.set_attribute_type("contact", "donotphone", "String")
    code, _ = run("--sas-key", SAS_KEY)
    assert code == 1
    assert "must be a Yes/No column" in capsys.readouterr().err


def test_new_endpoint_without_a_key_fails_with_what_to_pass(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run()
    assert code == 1
    assert "--sas-key or --key-vault" in capsys.readouterr().err
    assert ("POST", "serviceendpoints") not in writes(org)


def test_connection_string_for_another_queue_is_refused(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    value = (
        "Endpoint=sb://sb-contoso.servicebus.windows.net/;SharedAccessKeyName=dataverse-send;"
        f"SharedAccessKey={SAS_KEY};EntityPath=other"
    )
    code, _ = run("--sas-key", value)
    assert code == 1
    assert "EntityPath is other" in capsys.readouterr().err


def test_queue_persistent_contract_option(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY, "--contract", "queue-persistent")[0] == 0
    assert only_row(org, "serviceendpoint")[1]["contract"] == 6


def test_help_is_registered_in_the_channel_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert channel_main(["--help"]) == 0
    assert "provision" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        channel_main(["provision", "--help"])
    assert exited.value.code == 0
    assert "--dry-run" in capsys.readouterr().out
