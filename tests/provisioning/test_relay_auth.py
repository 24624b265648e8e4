"""``channel provision --rtj``: the relay's two authentication modes (relay contract), and the column lengths checked
before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devtools.emulators.dataverse import DataverseEmulator

from .conftest import ENTRA, PLUGIN_TYPE_ID, RELAY_CLIENT_ID, RELAY_URL, RTJ_ARGS, TOKEN_SCOPE, RunResult

Run = Callable[..., RunResult]
SECRET = "s3cr3t-value-that-is-long-enough-0123"
SECRET_MODE = ["--relay-auth", "secret", "--relay-secret", SECRET]


def writes(org: DataverseEmulator) -> list[tuple[str, str]]:
    return [(op.method, op.path) for op in org.operations if op.method != "GET"]


def value_of(org: DataverseEmulator, schema: str) -> Any:
    values = [r["value"] for r in org.rows("environmentvariablevalue").values() if r.get("schemaname") == schema]
    assert len(values) <= 1
    return values[0] if values else None


def test_switching_modes_keeps_exactly_one_of_scope_and_secret(rtj_org: DataverseEmulator, run: Run) -> None:
    assert run("--relay-url", RELAY_URL, *ENTRA, base=RTJ_ARGS)[0] == 0
    assert (value_of(rtj_org, "cr123_ChannelRelayScope"), value_of(rtj_org, "cr123_ChannelRelaySecret")) == (
        TOKEN_SCOPE,
        None,
    )
    rtj_org.reset()
    code, out = run(*SECRET_MODE, base=RTJ_ARGS)
    assert code == 0, out
    assert [m for m, _ in writes(rtj_org)] == ["DELETE", "POST"]  # the scope value goes, the secret value comes
    assert (value_of(rtj_org, "cr123_ChannelRelayScope"), value_of(rtj_org, "cr123_ChannelRelaySecret")) == (
        None,
        SECRET,
    )
    assert "remove the value of environment variable cr123_ChannelRelayScope" in out
    assert "RTJ_AUTH_MODE=secret" in out and "anyone who can read environment variable values" in out
    assert SECRET not in out
    rtj_org.reset()
    assert run(*SECRET_MODE, base=RTJ_ARGS)[0] == 0
    assert writes(rtj_org) == []
    code, out = run(*ENTRA, base=RTJ_ARGS)
    assert code == 0, out
    assert (value_of(rtj_org, "cr123_ChannelRelayScope"), value_of(rtj_org, "cr123_ChannelRelaySecret")) == (
        TOKEN_SCOPE,
        None,
    )
    rtj_org.reset()
    code, out = run(*ENTRA, base=RTJ_ARGS)
    assert (code, writes(rtj_org)) == (0, [])
    assert "0 changed: nothing to do" in out


def test_the_managed_identity_is_bound_once_the_assembly_is_registered(org: DataverseEmulator, run: Run) -> None:
    org.enable_rtj()
    code, out = run("--relay-url", RELAY_URL, *ENTRA, base=RTJ_ARGS)
    assert code == 0, out
    identity_id, identity = next(iter(org.rows("managedidentity").items()))
    assert identity["applicationid"] == RELAY_CLIENT_ID
    assert "is not bound to it yet" in out and "not bound to the relay assembly yet" in out
    org.add_plugin_type("ChannelRelay.OutboundRelayPlugin", PLUGIN_TYPE_ID)
    org.reset()
    code, out = run(*ENTRA, base=RTJ_ARGS)
    assert code == 0, out
    assembly_id = org.get_row("plugintype", PLUGIN_TYPE_ID)["_pluginassemblyid_value"]  # type: ignore[index]
    api_id = next(iter(org.rows("customapi")))
    assert writes(org) == [("PATCH", f"customapis({api_id})"), ("PATCH", f"pluginassemblies({assembly_id})")]
    assert org.get_row("pluginassembly", assembly_id)["_managedidentityid_value"] == identity_id  # type: ignore[index]
    assert "bind plug-in assembly ChannelRelay to managed identity cr123 channel relay" in out


def test_a_changed_identity_updates_only_its_columns(rtj_org: DataverseEmulator, run: Run) -> None:
    assert run(*ENTRA, base=RTJ_ARGS)[0] == 0
    identity_id = next(iter(rtj_org.rows("managedidentity")))
    other = "99999999-8888-4777-8666-555544443333"
    rtj_org.reset()
    changed = [other if value == RELAY_CLIENT_ID else value for value in ENTRA]
    code, out = run(*changed, base=RTJ_ARGS)
    assert code == 0, out
    assert writes(rtj_org) == [("PATCH", f"managedidentities({identity_id})")]
    assert [op.body for op in rtj_org.operations if op.method == "PATCH"] == [{"applicationid": other}]
    assert "update managed identity cr123 channel relay (applicationid)" in out


def test_a_default_value_on_the_other_variable_stops_the_run(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(*SECRET_MODE, base=RTJ_ARGS)[0] == 0
    definitions = rtj_org.rows("environmentvariabledefinition")
    definition_id = next(k for k, r in definitions.items() if r["schemaname"] == "cr123_ChannelRelaySecret")
    rtj_org.add_row(
        "environmentvariabledefinition", definition_id, {**definitions[definition_id], "defaultvalue": "set-by-hand"}
    )
    assert run(*ENTRA, base=RTJ_ARGS)[0] == 1
    assert "cr123_ChannelRelaySecret has a default value" in capsys.readouterr().err


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_name_too_long_for_its_column_stops_before_anything_is_written(
    rtj_org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str], dry_run: list[str]
) -> None:
    api = "cr123_" + "A" * 90  # fits uniquename (128) but not name (100) with its ".payload" suffix
    code, out = run("--rtj-api-name", api, *dry_run, base=RTJ_ARGS)
    assert code == 1
    assert (
        "customapirequestparameter.name would be 104 characters long; its MaxLength is 100" in capsys.readouterr().err
    )
    assert writes(rtj_org) == [] and "POST " not in out
    code, _ = run("--dry-run", base=["--prefix", "cr123", "--solution", "S" * 66, "--rtj-only"])
    assert code == 1
    assert "solution.uniquename would be 66 characters long; its MaxLength is 65" in capsys.readouterr().err


def test_the_longest_display_name_fits_every_column(rtj_org: DataverseEmulator, run: Run) -> None:
    name = "N" * 90
    code, out = run("--rtj-display-name", name, base=RTJ_ARGS)
    assert code == 0, out
    api = next(iter(rtj_org.rows("customapi").values()))
    assert api["displayname"] == f"{name}: outbound" and len(api["displayname"]) == 100
    definition = next(iter(rtj_org.rows("msdyn_channeldefinition").values()))
    assert definition["msdyn_name"] == definition["msdyn_displayname"] == name


def test_the_secret_can_come_from_the_environment_not_the_command_line(
    rtj_org: DataverseEmulator, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTJ_OUTBOUND_SECRET", SECRET)
    code, out = run("--relay-url", RELAY_URL, "--relay-auth", "secret", base=RTJ_ARGS)
    assert code == 0, out
    assert value_of(rtj_org, "cr123_ChannelRelaySecret") == SECRET
    assert SECRET not in out  # masked in what is printed, as with the flag


def test_the_environment_secret_never_picks_the_mode_by_itself(
    rtj_org: DataverseEmulator, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTJ_OUTBOUND_SECRET", SECRET)
    code, out = run("--relay-url", RELAY_URL, *ENTRA, base=RTJ_ARGS)
    assert code == 0, out
    assert value_of(rtj_org, "cr123_ChannelRelaySecret") is None
    assert value_of(rtj_org, "cr123_ChannelRelayScope") == TOKEN_SCOPE
