"""``channel org add | list | show | update | disable | remove`` (issue #15) on the in-memory registry table."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest

from cli import main as channel
from cli import org as org_cli
from devtools import azurite
from shared.adapters.org_table import MemoryOrgTable
from shared.orgs.model import ORG_SETTINGS, SECRET_SETTINGS
from tests.unit.test_settings import BASE

ORG_A = "0a0a0a0a-1111-4222-8333-444455556666"
ORG_B = "0b0b0b0b-1111-4222-8333-444455556666"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-4333-8444-555566667777"
URL_A = "https://fabrikam.crm4.dynamics.com/api/data/v9.2"
MULTI = {**{k: v for k, v in BASE.items() if k != "DATAVERSE_URL"}, "MULTI_ORG": "true", "ORG_APP_CLIENT_ID": APP}


class Run:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.table = MemoryOrgTable()
        self.env = dict(MULTI if env is None else env)
        self.answers: list[bool] = []
        self.asked: list[str] = []

    def __call__(self, *args: str, **kw: Any) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()

        def confirm(question: str) -> bool:
            self.asked.append(question)
            return self.answers.pop(0)

        code = org_cli.main(list(args), environ=self.env, table=self.table, confirm=confirm, out=out, err=err, **kw)
        return code, out.getvalue(), err.getvalue()

    def add_a(self, *extra: str) -> tuple[int, str, str]:
        return self("add", ORG_A, "--url", URL_A, "--tenant", TENANT, "--name", "Fabrikam", *extra)

    def row(self, org_id: str = ORG_A) -> dict[str, Any]:
        found = self.table.get(org_id)
        assert found is not None
        return found[0]


@pytest.fixture
def run() -> Run:
    return Run()


def test_registered_as_a_channel_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert channel.main([]) == 2
    assert "org " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        channel.main(["org", "--help"])
    assert exited.value.code == 0
    assert "channel org add <org-id> --url" in capsys.readouterr().out


def test_add_stores_a_validated_row_with_overrides_and_secret_names(run: Run) -> None:
    code, out, err = run.add_a(
        "--set",
        "MESSAGE_BODY_COLUMN=fab_text",
        "--set",
        "twilio_account_sid=AC" + "b" * 32,
        "--secret",
        "TWILIO_AUTH_TOKEN=fabrikam-twilio-token",
    )
    assert (code, err) == (0, ""), err
    assert out.startswith(f"added org {ORG_A} (Fabrikam): {URL_A} (enabled)")
    row = run.row()
    assert row["WebApiUrl"] == URL_A and row["TenantId"] == TENANT and row["Enabled"] is True
    assert row["MESSAGE_BODY_COLUMN"] == "fab_text"
    assert row["TWILIO_ACCOUNT_SID"] == "AC" + "b" * 32
    assert row["TWILIO_AUTH_TOKEN_SECRET_NAME"] == "fabrikam-twilio-token"
    assert row["UpdatedAt"]


def test_add_accepts_the_environment_url_and_upper_case_ids(run: Run) -> None:
    code, _, err = run("add", ORG_A.upper(), "--url", "https://fabrikam.crm4.dynamics.com/", "--tenant", TENANT)
    assert code == 0, err
    assert run.row()["WebApiUrl"] == URL_A


def test_an_invalid_override_names_the_org_and_the_field_and_exits_2(run: Run) -> None:
    code, out, err = run.add_a("--set", "MESSAGE_BODY_COLUMN=Not A Column")
    assert code == 2 and out == ""
    assert f"org {ORG_A}: MESSAGE_BODY_COLUMN: " in err
    assert "Not A Column" in err
    assert run.table.get(ORG_A) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://fabrikam.crm4.dynamics.com", "--tenant", TENANT], "WebApiUrl: "),
        (["--url", URL_A, "--tenant", "fabrikam.onmicrosoft.com"], "TenantId: must be the customer's Entra tenant"),
        (["--url", URL_A, "--tenant", TENANT, "--secret", "ACS_ACCESS_KEY=bad_name!"], "ACS_ACCESS_KEY_SECRET_NAME"),
        (["--url", URL_A, "--tenant", TENANT, "--set", "TWILIO_ACCOUNT_SID=AC" + "c" * 32], "TWILIO_AUTH_TOKEN"),
    ],
)
def test_row_errors_name_the_org_and_the_field(run: Run, args: list[str], message: str) -> None:
    code, _, err = run("add", ORG_A, *args)
    assert code == 2
    assert f"org {ORG_A}: " in err and message in err


def test_only_overridable_settings_and_known_secrets_are_accepted(run: Run) -> None:
    code, _, err = run.add_a("--set", "DATAVERSE_URL=https://x.crm.dynamics.com")
    assert code == 2
    assert "DATAVERSE_URL: not a setting an org can override; one of: MESSAGE_BODY_COLUMN" in err
    code, _, err = run.add_a("--secret", "MESSAGE_BODY_COLUMN=kv-name")
    assert code == 2 and "MESSAGE_BODY_COLUMN: not a secret an org can bring; one of: TWILIO_AUTH_TOKEN" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add", ORG_A, "--url", URL_A, "--tenant", TENANT, "--set", "TWILIO_FROM"],
            "'TWILIO_FROM' is not SETTING=value",
        ),
        (["add", "not-a-guid", "--url", URL_A, "--tenant", TENANT], "'not-a-guid' is not an organization id"),
        (["show", "{" + ORG_A + "}x"], "is not an organization id"),
    ],
)
def test_malformed_arguments_are_usage_errors(
    run: Run, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(*args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_static_token_is_refused_for_a_real_org_with_a_clear_fix(run: Run) -> None:
    run.env["DATAVERSE_STATIC_TOKEN"] = "emulator-token"
    code, _, err = run.add_a()
    assert code == 2
    assert f"org {ORG_A}: DATAVERSE_STATIC_TOKEN: only allowed with a loopback DATAVERSE_URL" in err
    assert "fix: DATAVERSE_STATIC_TOKEN is a fixed token for loopback emulators only" in err
    code, _, err = run("add", ORG_B, "--url", "http://127.0.0.1:7071", "--tenant", TENANT)
    assert code == 0, err


def test_adding_twice_is_refused(run: Run) -> None:
    assert run.add_a()[0] == 0
    code, _, err = run.add_a()
    assert code == 2 and "is registered already (use 'channel org update')" in err


def test_update_changes_only_what_is_given_and_unsets(run: Run) -> None:
    assert run.add_a("--set", "MESSAGE_BODY_COLUMN=fab_text", "--set", "DEFAULT_COUNTRY_CODE=44")[0] == 0
    code, out, err = run(
        "update", ORG_A, "--set", "TWILIO_FROM=+447700900001", "--unset", "DEFAULT_COUNTRY_CODE", "--name", "Fab"
    )
    assert code == 0, err
    assert f"updated org {ORG_A} (Fab) (enabled); running instances see the change within ORG_CACHE_SECONDS" in out
    row = run.row()
    assert row["MESSAGE_BODY_COLUMN"] == "fab_text" and row["TWILIO_FROM"] == "+447700900001"
    assert "DEFAULT_COUNTRY_CODE" not in row and row["WebApiUrl"] == URL_A and row["DisplayName"] == "Fab"
    code, _, err = run("update", ORG_A, "--unset", "QUIET_HOURS")
    assert code == 2 and "QUIET_HOURS: org " in err and "has no such override or secret to unset" in err


def test_update_validates_like_add(run: Run) -> None:
    assert run.add_a()[0] == 0
    code, _, err = run("update", ORG_A, "--set", "DEFAULT_COUNTRY_CODE=abc")
    assert code == 2 and f"org {ORG_A}: DEFAULT_COUNTRY_CODE: " in err
    assert "DEFAULT_COUNTRY_CODE" not in run.row()


def test_unknown_org_is_a_clear_error(run: Run) -> None:
    for command in (["update", ORG_B, "--name", "x"], ["disable", ORG_B], ["show", ORG_B], ["remove", ORG_B, "--yes"]):
        code, _, err = run(*command)
        assert code == 2, command
        assert f"org {ORG_B} is not registered (see 'channel org list')" in err


def test_disable_and_enable(run: Run) -> None:
    assert run.add_a()[0] == 0
    code, out, _ = run("disable", ORG_A)
    assert code == 0 and "reason unknown_organization" in out
    assert run.row()["Enabled"] is False
    assert run("update", ORG_A, "--enable")[0] == 0
    assert run.row()["Enabled"] is True
    assert run("update", ORG_A, "--disable")[0] == 0
    assert run.row()["Enabled"] is False
    assert run("add", ORG_B, "--url", URL_A, "--tenant", TENANT, "--disabled")[0] == 0
    assert run.row(ORG_B)["Enabled"] is False


def test_remove_asks_unless_yes(run: Run) -> None:
    assert run.add_a()[0] == 0
    run.answers = [False]
    code, _, err = run("remove", ORG_A)
    assert code == 2 and "not removed (pass --yes" in err
    assert run.asked == [f"remove org {ORG_A} (Fabrikam) ({URL_A})?"]
    assert run.table.get(ORG_A) is not None
    run.answers = [True]
    assert run("remove", ORG_A)[0] == 0
    assert run.table.get(ORG_A) is None
    assert run.add_a()[0] == 0
    code, out, _ = run("remove", ORG_A, "--yes")
    assert code == 0 and f"removed org {ORG_A} (Fabrikam)" in out and run.table.get(ORG_A) is None


def test_list_table_and_json(run: Run) -> None:
    assert run("list")[1] == "no org registered (add one with 'channel org add')\n"
    assert run.add_a("--set", "MESSAGE_BODY_COLUMN=fab_text", "--secret", "TWILIO_AUTH_TOKEN=fab-token")[0] == 0
    assert run("add", ORG_B, "--url", "https://adatum.crm.dynamics.com", "--tenant", TENANT, "--disabled")[0] == 0
    code, out, err = run("list")
    assert code == 0 and err == ""
    header, first, second = out.splitlines()[:3]
    assert header.split() == ["ORG", "ID", "NAME", "ENABLED", "WEB", "API", "URL", "TENANT", "OVERRIDES"]
    assert first.split() == [ORG_B, "-", "no", "https://adatum.crm.dynamics.com/api/data/v9.2", TENANT, "0"]
    assert second.split() == [ORG_A, "Fabrikam", "yes", URL_A, TENANT, "2"]
    assert out.rstrip().endswith("2 org(s)")
    code, out, _ = run("list", "--json")
    rows = json.loads(out)
    assert [r["org_id"] for r in rows] == [ORG_B, ORG_A]
    assert rows[1]["secret_names"] == {"TWILIO_AUTH_TOKEN": "fab-token"}
    assert rows[1]["overrides"] == {"MESSAGE_BODY_COLUMN": "fab_text"}
    assert rows[1]["own_provider_credentials"] is True and rows[1]["valid"] is True


def test_show_prints_every_field_and_secret_names_only(run: Run) -> None:
    run.env["TWILIO_AUTH_TOKEN"] = "deployment-token-value"
    assert run.add_a("--set", "TWILIO_FROM=+447700900001", "--secret", "TWILIO_AUTH_TOKEN=fab-token")[0] == 0
    code, out, _ = run("show", ORG_A)
    assert code == 0
    for text in (
        f"org id:        {ORG_A}",
        "name:          Fabrikam",
        "enabled:       yes",
        f"Web API URL:   {URL_A}",
        f"tenant:        {TENANT}",
        "  TWILIO_FROM = +447700900001",
        "  TWILIO_AUTH_TOKEN: Key Vault secret 'fab-token' (TWILIO_AUTH_TOKEN_SECRET_NAME)",
        f"callback URLs carry ?org={ORG_A}",
        "valid:         yes",
    ):
        assert text in out, out
    assert "deployment-token-value" not in out
    shown = json.loads(run("show", ORG_A, "--json")[1])
    assert shown["secret_names"] == {"TWILIO_AUTH_TOKEN": "fab-token"} and shown["updated_at"]
    assert "deployment-token-value" not in json.dumps(shown)


def test_show_reports_a_row_the_app_cannot_use(run: Run) -> None:
    run.table.insert(ORG_A, {"WebApiUrl": URL_A, "TenantId": TENANT, "Enabled": True, "DATAVERSE_URL": "x"})
    code, out, _ = run("show", ORG_A)
    assert code == 0
    assert "valid:         NO, the app cannot use this row:" in out
    assert "  DATAVERSE_URL: not a setting an org can override" in out
    assert json.loads(run("show", ORG_A, "--json")[1])["valid"] is False


def test_warns_when_multi_org_is_off() -> None:
    run = Run({**BASE})
    code, _, err = run.add_a()
    assert code == 0
    assert "warning: MULTI_ORG is off in these settings" in err
    assert "MULTI_ORG is off" not in Run()("list")[2]


def test_settings_that_do_not_load_exit_2() -> None:
    code, _, err = Run({**MULTI, "ORG_APP_CLIENT_ID": ""})("list")
    assert code == 2
    assert "the app settings do not load" in err and "ORG_APP_CLIENT_ID: required when MULTI_ORG=true" in err


def test_help_lists_every_overridable_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        org_cli.main(["add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in (*ORG_SETTINGS, *SECRET_SETTINGS):
        assert name.replace("_", "_") in text


def test_the_real_table_through_azurite(azurite_connection_string: str) -> None:
    """No table injected: the command opens ORG_TABLE_NAME with AzureWebJobsStorage, as the app does."""
    table_name = "orgs" + uuid.uuid4().hex[:10]
    env = {**MULTI, "AzureWebJobsStorage": azurite_connection_string, "ORG_TABLE_NAME": table_name}

    def call(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return org_cli.main(list(args), environ=env, out=out, err=err), out.getvalue(), err.getvalue()

    code, _, err = call("add", ORG_A, "--url", URL_A, "--tenant", TENANT, "--set", "MESSAGE_BODY_COLUMN=fab_text")
    assert code == 0, err
    assert call("add", ORG_A, "--url", URL_A, "--tenant", TENANT)[0] == 2
    assert call("update", ORG_A, "--secret", "WHATSAPP_ACCESS_TOKEN=fab-wa")[0] == 0
    assert call("disable", ORG_A)[0] == 0
    shown = json.loads(call("show", ORG_A, "--json")[1])
    assert shown["enabled"] is False
    assert shown["overrides"] == {"MESSAGE_BODY_COLUMN": "fab_text"}
    assert shown["secret_names"] == {"WHATSAPP_ACCESS_TOKEN": "fab-wa"}
    assert [r["org_id"] for r in json.loads(call("list", "--json")[1])] == [ORG_A]
    assert call("remove", ORG_A, "--yes")[0] == 0
    assert json.loads(call("list", "--json")[1]) == []


def test_an_unreachable_table_exits_1() -> None:
    env = {**MULTI, "AzureWebJobsStorage": azurite.connection_string(f"http://127.0.0.1:{azurite.free_port()}/x")}
    err = io.StringIO()
    assert org_cli.main(["list"], environ=env, out=io.StringIO(), err=err) == 1
    assert "the org registry table channelorgs could not be reached" in err.getvalue()


def test_update_without_a_change_is_refused(run: Run) -> None:
    assert run.add_a()[0] == 0
    code, _, err = run("update", ORG_A)
    assert code == 2 and "nothing to change: pass --url, --tenant" in err


def test_a_secret_value_is_never_stored(run: Run) -> None:
    code, _, err = run.add_a("--set", "TWILIO_AUTH_TOKEN=the-real-token-value")
    assert code == 2
    assert "TWILIO_AUTH_TOKEN is a secret: the registry never holds secret values" in err
    assert "--secret TWILIO_AUTH_TOKEN=<secret name>" in err and "the-real-token-value" not in err
    assert run.table.get(ORG_A) is None


def test_update_repairs_a_hand_edited_row_and_says_what_it_dropped(run: Run) -> None:
    run.table.insert(ORG_A, {"WebApiUrl": URL_A, "TenantId": TENANT, "Enabled": True, "DATAVERSE_URL": "x"})
    code, _, err = run("disable", ORG_A)
    assert code == 0, err
    assert "note: dropped what no org can set: DATAVERSE_URL" in err
    assert "DATAVERSE_URL" not in run.row() and run.row()["Enabled"] is False
