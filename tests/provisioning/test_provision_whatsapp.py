"""``channel provision --whatsapp`` (issue #17): the template columns on the message table and its main form, and
with ``--rtj`` the template message parts next to ``text``; idempotent; a dry-run snapshot of an empty org."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from provisioning.whatsapp import COLUMNS, form_with_columns
from shared.app.whatsapp_rtj import TEMPLATE_PARTS

from .conftest import RELAY_URL, RTJ_ARGS, SAS_KEY, RunResult
from .test_provision import assert_snapshot, dry_run_text
from .test_provision_rtj import KV

Run = Callable[..., RunResult]
SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "provisioning" / "dry_run_whatsapp_empty_org.txt"
TEMPLATE_COLUMNS = ["cr123_template", "cr123_templatelanguage", "cr123_templatevariables", "cr123_mediaurl"]


def writes(org: DataverseEmulator) -> list[tuple[str, str]]:
    return [(op.method, op.path) for op in org.operations if op.method != "GET"]


def attribute_bodies(org: DataverseEmulator) -> dict[str, Any]:
    path = "EntityDefinitions(LogicalName='cr123_smsmessage')/Attributes"
    return {op.body["SchemaName"]: op.body for op in org.operations if op.method == "POST" and op.path == path}


def main_form(org: DataverseEmulator) -> dict[str, Any]:
    [form] = [
        f for f in org.rows("systemform").values() if f["objecttypecode"] == "cr123_smsmessage" and f["type"] == 2
    ]
    return form


def test_columns_and_form_are_added_once_and_the_settings_printed(org: DataverseEmulator, run: Run) -> None:
    code, out = run("--sas-key", SAS_KEY, "--whatsapp")
    assert code == 0, out
    created = attribute_bodies(org)
    assert created["cr123_Template"]["AttributeType"] == "String" and created["cr123_Template"]["MaxLength"] == 200
    assert created["cr123_TemplateVariables"]["AttributeType"] == "Memo"
    assert created["cr123_MediaUrl"]["MaxLength"] == 1000
    formxml = str(main_form(org)["formxml"])
    assert all(f'datafieldname="{column}"' in formxml for column in TEMPLATE_COLUMNS)
    assert 'datafieldname="name"' in formxml  # what the form had is kept
    for line in (
        "MESSAGE_TEMPLATE_COLUMN=cr123_template",
        "MESSAGE_TEMPLATE_LANGUAGE_COLUMN=cr123_templatelanguage",
        "MESSAGE_TEMPLATE_VARIABLES_COLUMN=cr123_templatevariables",
        "MESSAGE_MEDIA_COLUMN=cr123_mediaurl",
    ):
        assert line in out
    org.reset()
    code, out = run("--whatsapp")
    assert code == 0, out
    assert writes(org) == []  # a re-run only reads
    assert "nothing to do" in out


def test_without_the_flag_nothing_whatsapp_is_written(org: DataverseEmulator, run: Run) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    assert "cr123_Template" not in attribute_bodies(org)
    assert "cr123_template" not in str(main_form(org).get("formxml"))


def test_a_template_column_of_another_type_stops_the_run(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--sas-key", SAS_KEY)[0] == 0
    org.add_columns("cr123_smsmessage", ["cr123_template"])
    org.store.entity("cr123_smsmessage").attribute_types["cr123_template"] = "Integer"
    code, _ = run("--whatsapp")
    assert code != 0 and "cr123_template exists as Integer; it must be text" in capsys.readouterr().err


def test_form_xml_gets_one_tab_with_only_the_missing_columns() -> None:
    form = '<form><tabs><tab name="t"><columns /></tab></tabs><x datafieldname="cr123_template" /></form>'
    updated = form_with_columns(form, TEMPLATE_COLUMNS)
    assert updated is not None
    assert updated.count("datafieldname=") == 4 and updated.count("<tab ") == 2
    assert form_with_columns(updated, TEMPLATE_COLUMNS) is None
    assert len(COLUMNS) == len(TEMPLATE_PARTS)


def test_rtj_whatsapp_declares_the_template_parts_on_a_custom_channel(rtj_org: DataverseEmulator, run: Run) -> None:
    code, out = run(*KV, "--whatsapp", base=RTJ_ARGS)
    assert code == 0, out
    [definition] = rtj_org.rows("msdyn_channeldefinition").values()
    assert definition["msdyn_channeltype"] == "Custom"
    parts = {p["msdyn_name"]: p for p in rtj_org.rows("msdyn_channelmessagepart").values()}
    assert set(parts) == {"text", *TEMPLATE_PARTS}  # the parts shared/app/whatsapp_rtj.py reads
    assert parts["templatename"]["msdyn_isrequired"] is False
    rtj_org.reset()
    assert run(*KV, "--whatsapp", base=RTJ_ARGS)[0] == 0
    assert writes(rtj_org) == []


def test_rtj_whatsapp_on_an_sms_channel_is_refused(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "--relay-url",
        RELAY_URL,
        "--relay-auth",
        "secret",
        "--relay-secret",
        "s" * 40,
        "--whatsapp",
        "--rtj-channel-type",
        "sms",
        base=RTJ_ARGS,
    )
    assert code != 0 and "--rtj-channel-type custom" in out + capsys.readouterr().err
    assert writes(rtj_org) == []


def test_dry_run_on_an_empty_org_with_whatsapp(org: DataverseEmulator, run: Run) -> None:
    code, out = run("--key-vault", "kv-contoso", "--secret-name", "dataverse-sb", "--whatsapp", "--dry-run")
    assert code == 0, out
    assert writes(org) == []
    assert_snapshot(SNAPSHOT, dry_run_text(out, org.url))
    assert "would add cr123_template, cr123_templatelanguage" in out
