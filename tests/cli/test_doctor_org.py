"""``channel doctor --org <id>`` (issue #15): every check against one registered org's effective settings, on the
Dataverse and Twilio emulators, Azurite and a Service Bus double; the org row in the in-memory registry table."""

from __future__ import annotations

import io
import time
import types
from typing import Any

import pytest

from cli import doctor
from cli.doctor import OrgAccess
from cli.doctor.org_access import OrgAccessUnavailable, per_tenant_tokens
from shared.adapters.org_table import MemoryOrgTable
from shared.orgs.model import OrgRecord, to_entity
from shared.settings import load_settings
from tests.cli.conftest import TWILIO_SID, FakeServiceBus, Org, TwilioWithAccounts
from tests.cli.test_doctor import fix_after, lines

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-4333-8444-555566667777"
OTHER_ORG = "0b0b0b0b-1111-4222-8333-444455556666"


def multi_env(org: Org) -> dict[str, str]:
    env = {k: v for k, v in org.env.items() if k != "DATAVERSE_URL"}
    return {**env, "MULTI_ORG": "true"}


def register(table: MemoryOrgTable, org: Org, org_id: str | None = None, **changes: Any) -> str:
    record = OrgRecord(
        org_id=org_id or org.dataverse.organization_id,
        web_api_url=f"{org.dataverse.url}/api/data/v9.2",
        tenant_id=TENANT,
        display_name="Emulated org",
        **changes,
    )
    table.insert(record.org_id, to_entity(record))
    return record.org_id


def run(env: dict[str, str], bus: FakeServiceBus, org_id: str, table: MemoryOrgTable, **access: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor.main(["--org", org_id], environ=env, servicebus=bus, access=OrgAccess(table=table, **access), out=out)
    return code, out.getvalue()


def test_a_healthy_org_passes_every_check(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org)
    code, out = run(multi_env(org), bus, org_id, table)
    assert code == 0, out
    for name in (
        "settings",
        "multi-org",
        "org-registered",
        "org-enabled",
        "org-secrets",
        "org-settings",
        "dataverse-token",
        "whoami",
        "org-id",
        "interaction-action",
        "message-table",
        "message-body-column",
        "contact-phone-column",
        "compliance-column",
        "state-table",
        "servicebus:activities",
        "provider:twilio",
    ):
        assert lines(out, "ok", name), f"{name} not ok:\n{out}"
    assert f"WhoAmI OrganizationId {org_id} is the registered org id" in out


def test_an_unknown_org_is_a_clear_failing_check(org: Org, bus: FakeServiceBus) -> None:
    code, out = run(multi_env(org), bus, OTHER_ORG, MemoryOrgTable())
    assert code == 1
    [line] = lines(out, "problem", "org-registered")
    assert f"org {OTHER_ORG} is not registered" in line and "unknown_organization" in line
    assert f"channel org add {OTHER_ORG} --url" in fix_after(out, "problem", "org-registered")
    assert lines(out, "skipped", "others") and not lines(out, "ok", "whoami")


def test_a_disabled_org_and_multi_org_off_are_problems(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org, enabled=False)
    code, out = run({**org.env, "MULTI_ORG": "false"}, bus, org_id, table)
    assert code == 1
    assert lines(out, "problem", "multi-org") and lines(out, "problem", "org-enabled")
    assert f"channel org update {org_id} --enable" in fix_after(out, "problem", "org-enabled")
    assert lines(out, "ok", "whoami")  # the rest still runs against the org


def test_a_url_naming_another_org_fails_the_org_id_check(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    register(table, org, org_id=OTHER_ORG)
    code, out = run(multi_env(org), bus, OTHER_ORG, table)
    assert code == 1
    [line] = lines(out, "problem", "org-id")
    assert f"answers WhoAmI with OrganizationId {org.dataverse.organization_id}, not {OTHER_ORG}" in line


def test_checks_use_the_orgs_overrides(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org, overrides={"MESSAGE_BODY_COLUMN": "cr123_nosuchcolumn"})
    code, out = run(multi_env(org), bus, org_id, table)
    assert code == 1
    [line] = lines(out, "problem", "message-body-column")
    assert "MESSAGE_BODY_COLUMN 'cr123_nosuchcolumn' is missing" in line
    assert "MESSAGE_BODY_COLUMN" in lines(out, "ok", "org-settings")[0]


def test_an_invalid_row_is_reported_and_stops(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org, overrides={"DEFAULT_COUNTRY_CODE": "abc"})
    code, out = run(multi_env(org), bus, org_id, table)
    assert code == 1
    [line] = lines(out, "problem", "org-settings")
    assert f"org {org_id}: DEFAULT_COUNTRY_CODE: " in line
    assert not lines(out, "ok", "whoami")


def test_the_orgs_own_secrets_are_read_by_name_and_used(org: Org, bus: FakeServiceBus) -> None:
    """The org's own Twilio account: its auth token read from the vault by name, checked against its account."""
    own_sid, own_token = "AC" + "9" * 32, "the-orgs-own-token"
    twilio = TwilioWithAccounts(account_sid=own_sid, auth_token=own_token)
    try:
        table = MemoryOrgTable()
        org_id = register(
            table,
            org,
            overrides={"TWILIO_ACCOUNT_SID": own_sid},
            secret_names={"TWILIO_AUTH_TOKEN": "fabrikam-twilio"},
        )
        env = {**multi_env(org), "TWILIO_API_BASE_URL": twilio.url, "KEY_VAULT_URI": "https://kv.vault.azure.net"}
        vault = {"fabrikam-twilio": own_token}
        read: list[str] = []

        def reader(name: str) -> str:
            read.append(name)
            if name not in vault:
                raise LookupError(f"secret {name} not found (404)")
            return vault[name]

        code, out = run(env, bus, org_id, table, secrets=lambda settings: reader)
        assert code == 0, out
        assert "Key Vault secret 'fabrikam-twilio' readable" in lines(out, "ok", "org-secret:TWILIO_AUTH_TOKEN")[0]
        assert lines(out, "ok", "provider:twilio") and read == ["fabrikam-twilio"]
        assert own_token not in out and TWILIO_SID not in out

        del vault["fabrikam-twilio"]
        code, out = run(env, bus, org_id, table, secrets=lambda settings: reader)
        assert code == 1
        [line] = lines(out, "problem", "org-secret:TWILIO_AUTH_TOKEN")
        assert "'fabrikam-twilio' (TWILIO_AUTH_TOKEN_SECRET_NAME) cannot be read" in line
        assert lines(out, "skipped", "provider:twilio")
    finally:
        twilio.stop()


def test_secrets_without_a_vault_are_a_problem(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org, secret_names={"RTJ_OUTBOUND_SECRET": "fabrikam-relay"})
    code, out = run(multi_env(org), bus, org_id, table)
    assert code == 1
    assert "KEY_VAULT_URI is not set" in lines(out, "problem", "org-secrets")[0]


def test_a_token_failure_names_the_org_identity_fix(org: Org, bus: FakeServiceBus) -> None:
    table = MemoryOrgTable()
    org_id = register(table, org)

    def no_token(settings: Any, record: OrgRecord) -> Any:
        raise OrgAccessUnavailable("no token in this test")

    code, out = run(multi_env(org), bus, org_id, table, tokens=no_token)
    assert code == 1
    assert "no token in this test" in lines(out, "problem", "dataverse-token")[0]
    assert "ORG_APP_CLIENT_ID" in fix_after(out, "problem", "dataverse-token")
    assert lines(out, "skipped", "org-id")


# --- the per-tenant token hook ----------------------------------------------------------------------------------
def _real_org(org: Org) -> tuple[Any, OrgRecord]:
    env = {k: v for k, v in multi_env(org).items() if k != "DATAVERSE_STATIC_TOKEN"}
    settings = load_settings({**env, "ORG_APP_CLIENT_ID": APP})
    record = OrgRecord(OTHER_ORG, "https://fabrikam.crm4.dynamics.com/api/data/v9.2", TENANT)
    return settings, record


def test_real_orgs_get_the_per_tenant_token_as_the_app_does(org: Org) -> None:
    settings, record = _real_org(org)
    asked: list[tuple[str, ...]] = []

    class Credential:  # the app registration's credential in the customer's tenant
        def get_token(self, *scopes: str, **_: Any) -> Any:
            asked.append(scopes)
            return types.SimpleNamespace(token="org-token", expires_on=int(time.time()) + 3600)

    tokens = per_tenant_tokens(settings, record, credential=Credential())
    assert tokens.token() == "org-token"
    assert asked == [("https://fabrikam.crm4.dynamics.com/.default",)]


def test_without_org_app_client_id_the_hook_says_so(org: Org) -> None:
    settings, record = _real_org(org)
    settings = settings.model_copy(update={"org_app_client_id": None})
    with pytest.raises(OrgAccessUnavailable, match="set ORG_APP_CLIENT_ID"):
        per_tenant_tokens(settings, record)


# --- channel org add/update --check: WhoAmI with the org's own token -----------------------------------------------
def org_command(env: dict[str, str], table: MemoryOrgTable, *args: str) -> tuple[int, str, str]:
    from cli import org as org_cli

    out, err = io.StringIO(), io.StringIO()
    code = org_cli.main(list(args), environ=env, table=table, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_add_check_confirms_the_organization_id(org: Org) -> None:
    table, env = MemoryOrgTable(), multi_env(org)
    org_id = org.dataverse.organization_id
    code, out, err = org_command(env, table, "add", org_id, "--url", org.dataverse.url, "--tenant", TENANT, "--check")
    assert code == 0, err
    assert f"checked: WhoAmI at {org.dataverse.url}/api/data/v9.2 returns OrganizationId {org_id}" in out
    code, _, err = org_command(env, table, "add", OTHER_ORG, "--url", org.dataverse.url, "--tenant", TENANT, "--check")
    assert code == 2
    assert f"org {OTHER_ORG}: --check: the org at {org.dataverse.url}/api/data/v9.2 answers WhoAmI with " in err
    assert table.get(OTHER_ORG) is None
    code, _, err = org_command(env, table, "update", org_id, "--name", "x", "--check")
    assert code == 0, err


def test_add_check_with_an_unreachable_org_exits_1(org: Org) -> None:
    from devtools.azurite import free_port

    table, env = MemoryOrgTable(), multi_env(org)
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = org_command(env, table, "add", OTHER_ORG, "--url", url, "--tenant", TENANT, "--check")
    assert code == 1
    assert f"org {OTHER_ORG}: --check: WhoAmI at {url}/api/data/v9.2 failed" in err
    assert table.get(OTHER_ORG) is None


def test_without_org_a_multi_org_deployment_points_to_it(org: Org, bus: FakeServiceBus) -> None:
    out = io.StringIO()
    code = doctor.main([], environ=multi_env(org), servicebus=bus, out=out)
    assert code == 0, out.getvalue()
    assert "MULTI_ORG=true: check each org with --org <id>" in lines(out.getvalue(), "skipped", "dataverse")[0]
    assert lines(out.getvalue(), "ok", "state-table") and lines(out.getvalue(), "ok", "provider:twilio")
