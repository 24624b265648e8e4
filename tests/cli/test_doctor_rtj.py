"""``channel doctor`` for real-time journeys (the base actions in ``$metadata``, the outbound custom API) and for
settings still holding an unresolved Key Vault reference: one test per misconfiguration, each with its fix."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.emulators.dataverse import INBOUND_ACTION, NOTIFICATION_ACTION, DataverseEmulator
from tests.cli.conftest import FakeServiceBus, Org, create_custom_api
from tests.cli.test_doctor import fix_after, lines, run

RTJ_SECRET = "r" * 32
API = "cr123_ChannelOutbound"
KV_REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-contoso.vault.azure.net/secrets/twilio-auth-token/)"


def rtj_env(org: Org, **extra: str) -> dict[str, str]:
    return {**org.env, "RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": RTJ_SECRET, **extra}


ENTRA = {
    "RTJ_TOKEN_AUDIENCE": "api://x",
    "RTJ_TOKEN_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "RTJ_TOKEN_CLIENT_ID": "0b5f6d3e-1c2a-4b8e-9f7d-6a5c4b3a2f10",
}


def drop_from_metadata(dataverse: DataverseEmulator, old: str, new: str) -> None:
    """Serve ``$metadata`` with ``old`` replaced by ``new`` (an org whose base solution differs)."""
    original = dataverse.metadata_xml
    dataverse.metadata_xml = lambda: original().replace(old, new)  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------- RTJ
def test_without_rtj_settings_the_rtj_checks_are_skipped(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(org.env, bus)
    assert code == 0, out
    [line] = lines(out, "skipped", "real-time-journeys")
    assert "none of RTJ_OUTBOUND_SECRET, RTJ_TOKEN_AUDIENCE, RTJ_TOKEN_CLIENT_ID is set" in line
    assert "rtj:" not in out


@pytest.mark.parametrize("setting", [{"RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": RTJ_SECRET}, ENTRA])
def test_rtj_configured_checks_both_base_actions_as_the_app_calls_them(
    org: Org, bus: FakeServiceBus, setting: dict[str, str]
) -> None:
    code, out = run({**org.env, **setting}, bus)
    assert code == 0, out
    notification = lines(out, "ok", f"rtj:{NOTIFICATION_ACTION}")
    assert notification and "takes notificationPayLoad (Edm.String)" in notification[0]
    assert "takes inboundPayLoad (Edm.String)" in lines(out, "ok", f"rtj:{INBOUND_ACTION}")[0]
    assert "org parameters: notificationPayLoad (Edm.String, required)" in out
    [skip] = lines(out, "skipped", "rtj:custom-api")
    assert "pass --rtj-custom-api <unique name>" in skip
    assert not lines(out, "skipped", "real-time-journeys")


def test_an_org_without_the_inbound_action_is_a_problem_with_its_fix(org: Org, bus: FakeServiceBus) -> None:
    drop_from_metadata(org.dataverse, f'<Action Name="{INBOUND_ACTION}">', '<Action Name="msdyn_SomethingElse">')
    code, out = run(rtj_env(org), bus)
    assert code == 1
    [line] = lines(out, "problem", f"rtj:{INBOUND_ACTION}")
    assert f"the org has no action {INBOUND_ACTION}" in line
    assert "real-time journeys (Dynamics 365 Customer Insights - Journeys) is not installed" in fix_after(
        out, "problem", f"rtj:{INBOUND_ACTION}"
    )
    assert lines(out, "ok", f"rtj:{NOTIFICATION_ACTION}") and lines(out, "ok", "interaction-action")


def test_a_differently_named_parameter_is_reported_both_ways(org: Org, bus: FakeServiceBus) -> None:
    drop_from_metadata(org.dataverse, '"notificationPayLoad"', '"notificationPayload"')
    code, out = run(rtj_env(org), bus)
    assert code == 1
    [line] = lines(out, "problem", f"rtj:{NOTIFICATION_ACTION}")
    assert "the app sends notificationPayLoad, which the org's action does not declare" in line
    assert "the org requires notificationPayload, which the app does not send" in line
    assert "org parameters: notificationPayload (Edm.String, required)" in out
    assert "report it with the parameter list above" in fix_after(out, "problem", f"rtj:{NOTIFICATION_ACTION}")


def test_the_outbound_custom_api_as_provision_creates_it_passes(org: Org, bus: FakeServiceBus) -> None:
    name = create_custom_api(org.dataverse)
    env = {**org.env, "RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": RTJ_SECRET}
    code, out = run(env, bus, "--rtj-custom-api", name)  # the flag alone means RTJ is configured
    assert code == 0, out
    [line] = lines(out, "ok", "rtj:custom-api")
    assert f"custom API {name}: global action, payload → response (String), plug-in bound" in line
    assert lines(out, "ok", f"rtj:{INBOUND_ACTION}")


def test_a_missing_custom_api_names_the_provision_command(org: Org, bus: FakeServiceBus) -> None:
    org.dataverse.enable_rtj()
    code, out = run(rtj_env(org), bus, "--rtj-custom-api", "cr123_Nope")
    assert code == 1
    assert "custom API cr123_Nope does not exist in this org" in lines(out, "problem", "rtj:custom-api")[0]
    assert "channel provision --rtj --rtj-api-name cr123_Nope" in fix_after(out, "problem", "rtj:custom-api")


@pytest.mark.parametrize(
    ("made_with", "detail", "fix"),
    [
        (
            {"bound": False},
            "no plug-in is bound, so journeys get an empty response",
            "build and register ChannelRelay.dll (rtj-relay/README.md)",
        ),
        ({"response_type": 5}, "its response property response has type 5, not 10 (String)", "delete that row first"),
        (
            {"isfunction": True},
            "it is not a global action (bindingtype 0, isfunction false)",
            "these columns cannot change after creation",
        ),
    ],
)
def test_a_custom_api_journeys_cannot_use_is_a_problem_with_its_fix(
    org: Org, bus: FakeServiceBus, made_with: dict[str, Any], detail: str, fix: str
) -> None:
    name = create_custom_api(org.dataverse, **made_with)
    code, out = run(rtj_env(org), bus, "--rtj-custom-api", name)
    assert code == 1
    [line] = lines(out, "problem", "rtj:custom-api")
    assert f"custom API {name}: {detail}" in line
    assert fix in fix_after(out, "problem", "rtj:custom-api")


def test_a_malformed_custom_api_name_is_refused(
    org: Org, bus: FakeServiceBus, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(org.env, bus, "--rtj-custom-api", "x' or 1 eq 1")
    assert exit_info.value.code == 2
    assert "is not a custom API unique name such as cr123_ChannelOutbound" in capsys.readouterr().err


def test_rtj_checks_are_skipped_when_dataverse_is_unavailable(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(rtj_env(org, DATAVERSE_STATIC_TOKEN="not-the-token"), bus, "--rtj-custom-api", API)
    assert code == 1
    for name in (f"rtj:{NOTIFICATION_ACTION}", f"rtj:{INBOUND_ACTION}", "rtj:custom-api", "interaction-action"):
        assert lines(out, "skipped", name), f"{name} not skipped:\n{out}"


# ------------------------------------------------------------------------------------------------- Key Vault
def test_every_unresolved_key_vault_reference_is_named_never_shown(org: Org, bus: FakeServiceBus) -> None:
    env = {
        **org.env,
        "TWILIO_AUTH_TOKEN": KV_REFERENCE,
        "RTJ_OUTBOUND_SECRET": "  @microsoft.keyvault(VaultName=kv;SecretName=rtj)",
    }
    code, out = run(env, bus)
    assert code == 1
    for setting in ("RTJ_OUTBOUND_SECRET", "TWILIO_AUTH_TOKEN"):
        [line] = lines(out, "problem", f"key-vault:{setting}")
        assert f"{setting} holds an unresolved Key Vault reference" in line
        fix = fix_after(out, "problem", f"key-vault:{setting}")
        assert "'Key Vault Secrets User'" in fix and "secret the reference names exists" in fix and "restart" in fix
    assert "kv-contoso" not in out and "SecretName" not in out and "twilio-auth-token" not in out
    assert not lines(out, "ok", "key-vault-references")


def test_key_vault_references_are_reported_even_when_the_settings_fail(bus: FakeServiceBus) -> None:
    code, out = run({"ACS_EVENTGRID_SECRET": KV_REFERENCE, "PATH": "/usr/bin"}, bus)
    assert code == 1
    assert lines(out, "problem", "key-vault:ACS_EVENTGRID_SECRET") and lines(out, "problem", "settings")
    assert lines(out, "skipped", "others") and "PATH" not in out


def test_a_healthy_setup_has_no_unresolved_reference(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(org.env, bus)
    assert code == 0, out
    assert (
        "no setting holds an unresolved @Microsoft.KeyVault(...) reference"
        in lines(out, "ok", "key-vault-references")[0]
    )


def test_the_auth_mode_alone_does_not_turn_the_rtj_checks_on(org: Org, bus: FakeServiceBus) -> None:
    """The infra always deploys RTJ_AUTH_MODE (default entra): an outbound-only org is not asked about RTJ."""
    code, out = run({**org.env, "RTJ_AUTH_MODE": "entra"}, bus)
    assert code == 0, out
    assert lines(out, "skipped", "real-time-journeys") and "rtj:" not in out


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"RTJ_TOKEN_AUDIENCE": "api://x"}, "RTJ_TOKEN_TENANT_ID, RTJ_TOKEN_CLIENT_ID"),
        ({"RTJ_AUTH_MODE": "entra", "RTJ_OUTBOUND_SECRET": RTJ_SECRET}, "RTJ_TOKEN_AUDIENCE, RTJ_TOKEN_TENANT_ID"),
    ],
)
def test_relay_auth_settings_the_mode_lacks_are_a_problem_with_the_fix(
    org: Org, bus: FakeServiceBus, env: dict[str, str], missing: str
) -> None:
    code, out = run({**org.env, **env}, bus)
    assert code == 1
    [line] = lines(out, "problem", "rtj:relay-auth")
    assert missing in line and "refuses every relay call (503)" in line
    assert "RTJ_AUTH_MODE=secret" in fix_after(out, "problem", "rtj:relay-auth")
    assert RTJ_SECRET not in out


def test_relay_auth_ok_names_the_identity_never_the_secret(org: Org, bus: FakeServiceBus) -> None:
    code, out = run({**org.env, **ENTRA}, bus)
    assert code == 0, out
    [line] = lines(out, "ok", "rtj:relay-auth")
    assert ENTRA["RTJ_TOKEN_CLIENT_ID"] in line and "api://x" in line
    code, out = run(rtj_env(org), bus)
    assert code == 0, out
    assert "secret: X-Channel-Secret" in lines(out, "ok", "rtj:relay-auth")[0] and RTJ_SECRET not in out
