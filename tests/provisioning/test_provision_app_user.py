"""``channel provision --application-user`` (issue #15, the customer's admin) and ``--app-user-role``: the application
user of an app with its security role, idempotent, on the Dataverse emulator (strict systemuser columns)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.emulators.dataverse import DataverseEmulator

from .test_provision import SAS_KEY, assert_snapshot, body_of, writes

Run = Callable[..., tuple[int, str]]
APP = "5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716"
ROLE = "Contoso Channel Runtime"
SNAPSHOT = Path(__file__).parent.parent / "fixtures" / "provisioning" / "dry_run_application_user.txt"


def add_role(org: DataverseEmulator, name: str = ROLE, business_unit: str | None = None) -> str:
    role_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-role/{name}/{business_unit}"))
    org.add_row(
        "role",
        role_id,
        {"name": name, "_businessunitid_value": business_unit or org.business_unit_id, "_parentroleid_value": None},
    )
    return role_id


def user_of(org: DataverseEmulator, client_id: str = APP) -> tuple[str, dict[str, object]]:
    [(user_id, row)] = [(k, r) for k, r in org.rows("systemuser").items() if r.get("applicationid") == client_id]
    return user_id, row


def app_user(run: Run, *extra: str) -> tuple[int, str]:
    return run("--application-user", APP, "--app-user-role", ROLE, *extra, base=[])


def test_creates_the_application_user_with_the_role_once(org: DataverseEmulator, run: Run) -> None:
    role_id = add_role(org)
    code, out = app_user(run)
    assert code == 0, out
    assert body_of(org, "POST", "systemusers") == {
        "applicationid": APP,
        "businessunitid@odata.bind": f"/businessunits({org.business_unit_id})",
    }
    user_id, _ = user_of(org)
    assert org.user_roles[user_id] == {role_id}
    assert body_of(org, "POST", f"systemusers({user_id})/systemuserroles_association/$ref") == {
        "@odata.id": f"{org.url}/api/data/v9.2/roles({role_id})"
    }
    assert f"channel org add {org.organization_id} --url {org.url}/api/data/v9.2 --tenant <your tenant id>" in out
    assert "2 changed" in out
    org.reset()
    code, out = app_user(run)
    assert code == 0 and writes(org) == []
    assert "0 changed: nothing to do" in out
    assert f"security role '{ROLE}' of application user {APP}: up to date" in out


def test_an_existing_user_gets_the_role_and_is_enabled(org: DataverseEmulator, run: Run) -> None:
    role_id = add_role(org)
    user_id = "0c0c0c0c-1111-4222-8333-444455556666"
    org.add_row(
        "systemuser",
        user_id,
        {"applicationid": APP, "isdisabled": True, "_businessunitid_value": org.business_unit_id},
    )
    code, out = app_user(run)
    assert code == 0, out
    assert writes(org) == [
        ("PATCH", f"systemusers({user_id})"),
        ("POST", f"systemusers({user_id})/systemuserroles_association/$ref"),
    ]
    assert body_of(org, "PATCH", f"systemusers({user_id})") == {"isdisabled": False}
    assert org.user_roles[user_id] == {role_id}
    assert user_of(org)[1]["isdisabled"] is False


def test_the_role_of_the_users_own_business_unit_is_used(org: DataverseEmulator, run: Run) -> None:
    child = "0d0d0d0d-1111-4222-8333-444455556666"
    org.add_row("businessunit", child, {"name": "emea", "_parentbusinessunitid_value": org.business_unit_id})
    add_role(org)
    child_role = add_role(org, business_unit=child)
    code, out = app_user(run, "--business-unit", "emea")
    assert code == 0, out
    user_id, row = user_of(org)
    assert row["_businessunitid_value"] == child and org.user_roles[user_id] == {child_role}


def test_a_missing_role_stops_before_anything_is_written(
    org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = app_user(run)
    assert code == 1
    assert f"security role '{ROLE}': no role with that exact name in business unit" in capsys.readouterr().err
    assert writes(org) == []


def test_usage_errors(org: DataverseEmulator, run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--application-user", APP, base=[])[0] == 2
    assert "--application-user needs --app-user-role" in capsys.readouterr().err
    assert app_user(run, "--prefix", "cr123", "--rtj")[0] == 2
    assert "--application-user creates only the application user; drop --prefix, --rtj" in capsys.readouterr().err
    add_role(org)
    assert run("--application-user", "not-a-guid", "--app-user-role", ROLE, base=[])[0] == 1
    assert "--application-user needs an application (client) id, a GUID" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        run("--queue", "activities", base=[])
    assert exited.value.code == 2
    assert "the following arguments are required: --prefix, --solution" in capsys.readouterr().err


def test_dry_run_snapshot(org: DataverseEmulator, run: Run) -> None:
    add_role(org)
    code, out = app_user(run, "--dry-run")
    assert code == 0, out
    assert writes(org) == []
    assert_snapshot(SNAPSHOT, out.replace(org.url, "{DATAVERSE_URL}"))


def test_the_full_run_assigns_the_role_to_the_managed_identity_user(org: DataverseEmulator, run: Run) -> None:
    role_id = add_role(org)
    code, out = run("--sas-key", SAS_KEY, "--create-app-user", APP, "--app-user-role", ROLE)
    assert code == 0, out
    user_id, _ = user_of(org)
    assert org.user_roles[user_id] == {role_id}
    assert f"security role '{ROLE}' assigned" in out


def test_the_emulator_refuses_what_dataverse_refuses(org: DataverseEmulator) -> None:
    """A duplicate association, a role of another business unit, a missing user or role."""
    from shared.adapters.dataverse import DataverseClient
    from shared.adapters.tokens import StaticToken
    from shared.domain.errors import DataverseError

    from .conftest import TOKEN

    client = DataverseClient(org.url, StaticToken(TOKEN), max_retries=0)
    child = "0d0d0d0d-1111-4222-8333-444455556666"
    org.add_row("businessunit", child, {"name": "emea", "_parentbusinessunitid_value": org.business_unit_id})
    role, other = add_role(org), add_role(org, business_unit=child)
    user = "0c0c0c0c-1111-4222-8333-444455556666"
    org.add_row("systemuser", user, {"applicationid": APP, "_businessunitid_value": org.business_unit_id})

    def associate(user_id: str, role_id: str) -> None:
        client.request(
            "POST",
            f"systemusers({user_id})/systemuserroles_association/$ref",
            body={"@odata.id": f"{client.api}/roles({role_id})"},
            operation="associate",
        )

    associate(user, role)
    for user_id, role_id, status in ((user, role, 400), (user, other, 400), (child, role, 404), (user, child, 404)):
        with pytest.raises(DataverseError) as refused:
            associate(user_id, role_id)
        assert refused.value.status == status
    listed = client.request("GET", f"systemusers({user})/systemuserroles_association", operation="roles").json()
    assert [r["roleid"] for r in listed["value"]] == [role]
