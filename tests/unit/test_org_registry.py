"""The org registry (issue #15): settings, the org row's rules (the app settings' own), and the registry's cache."""

from __future__ import annotations

import pytest

from shared.adapters.org_table import MemoryOrgTable
from shared.orgs.model import (
    ORG_SETTINGS,
    SECRET_SETTINGS,
    OrgConfigError,
    OrgRecord,
    from_entity,
    org_settings,
    to_entity,
    web_api_url,
)
from shared.orgs.registry import OrgExists, OrgRegistry, UnknownOrg
from shared.ports import Conflict
from shared.settings import ConfigurationError, Settings, load_settings
from tests.unit.test_settings import BASE

ORG_A = "0a0a0a0a-1111-4222-8333-444455556666"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-4333-8444-555566667777"
MULTI = {**{k: v for k, v in BASE.items() if k != "DATAVERSE_URL"}, "MULTI_ORG": "true", "ORG_APP_CLIENT_ID": APP}


def org(**changes: object) -> OrgRecord:
    values: dict[str, object] = {
        "org_id": ORG_A.upper(),
        "web_api_url": "https://fabrikam.crm4.dynamics.com/api/data/v9.2",
        "tenant_id": TENANT,
        "display_name": "Fabrikam",
        "overrides": {"MESSAGE_BODY_COLUMN": "fab_text", "TWILIO_FROM": "+447700900001"},
    }
    values.update(changes)
    return OrgRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def base() -> Settings:
    return load_settings(MULTI)


# --- settings --------------------------------------------------------------------------------------------------
def test_off_by_default_and_dataverse_url_still_required() -> None:
    assert load_settings(BASE).multi_org is False
    assert load_settings({**BASE, "MULTI_ORG": " "}).multi_org is False
    with pytest.raises(ConfigurationError, match="DATAVERSE_URL: required setting is missing"):
        load_settings({k: v for k, v in BASE.items() if k != "DATAVERSE_URL"})


def test_multi_org_settings(base: Settings) -> None:
    assert (base.multi_org, base.org_table_name, base.org_app_client_id, base.org_cache_seconds) == (
        True,
        "channelorgs",
        APP,
        60.0,
    )
    assert base.dataverse_url == ""
    with pytest.raises(ConfigurationError, match="ORG_APP_CLIENT_ID: required when MULTI_ORG=true"):
        load_settings({**MULTI, "ORG_APP_CLIENT_ID": ""})
    with pytest.raises(ConfigurationError, match="ORG_APP_CLIENT_ID: must be a GUID"):
        load_settings({**MULTI, "ORG_APP_CLIENT_ID": "my-app"})
    with pytest.raises(ConfigurationError, match="ORG_TABLE_NAME"):
        load_settings({**MULTI, "ORG_TABLE_NAME": "org-table"})
    with pytest.raises(ConfigurationError, match="KEY_VAULT_URI must use https"):
        load_settings({**MULTI, "KEY_VAULT_URI": "http://kv.example.com"})
    with pytest.raises(ConfigurationError, match="ORG_TOKEN_AUTHORITY must use https"):
        load_settings({**MULTI, "ORG_TOKEN_AUTHORITY": "http://login.example.com"})


def test_every_org_setting_is_a_real_setting() -> None:
    aliases = {info.validation_alias for info in Settings.model_fields.values()}
    assert set(ORG_SETTINGS) <= aliases and set(SECRET_SETTINGS) <= aliases


# --- the row ---------------------------------------------------------------------------------------------------
def test_effective_settings_apply_the_overrides(base: Settings) -> None:
    record = org(
        secret_names={"TWILIO_AUTH_TOKEN": "fabrikam-twilio"}, overrides={"TWILIO_ACCOUNT_SID": "AC" + "f" * 32}
    )
    asked: list[str] = []
    effective = org_settings(base, record, lambda name: asked.append(name) or "their-token")  # type: ignore[func-returns-value]
    assert effective.dataverse_url == "https://fabrikam.crm4.dynamics.com"
    assert (effective.twilio_account_sid, effective.twilio_auth_token) == ("AC" + "f" * 32, "their-token")
    assert asked == ["fabrikam-twilio"] and record.own_provider_credentials
    assert base.twilio_auth_token == "secret-token"  # the deployment's settings are untouched


def test_a_bad_row_is_refused_naming_the_org_and_each_field(base: Settings) -> None:
    record = org(overrides={"MESSAGE_BODY_COLUMN": "Body Text", "DEFAULT_COUNTRY_CODE": "UK"})
    with pytest.raises(OrgConfigError) as caught:
        org_settings(base, record)
    text = str(caught.value)
    assert text.startswith(f"org {ORG_A.upper()}: ")
    assert "MESSAGE_BODY_COLUMN: 'Body Text' is not a Dataverse column logical name" in text
    assert "DEFAULT_COUNTRY_CODE: must be a calling code" in text


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (org(web_api_url="http://fabrikam.crm.dynamics.com"), "WebApiUrl: must use https"),
        (org(web_api_url="https://fabrikam.crm.dynamics.com/api/data"), "WebApiUrl: must be https://"),
        (org(web_api_url=""), "WebApiUrl: required"),
        (org(tenant_id="fabrikam.onmicrosoft.com"), "TenantId: must be the customer's Entra tenant"),
        (org(secret_names={"TWILIO_AUTH_TOKEN": "no spaces allowed"}), "TWILIO_AUTH_TOKEN_SECRET_NAME: 'no spaces"),
        (org(overrides={"TWILIO_ACCOUNT_SID": "AC" + "f" * 32}), "TWILIO_ACCOUNT_SID: an org's own account needs"),
        (org(unknown=("CHANNEL_PROVIDER",)), "CHANNEL_PROVIDER: not a setting an org can override"),
    ],
)
def test_row_rules(base: Settings, record: OrgRecord, message: str) -> None:
    with pytest.raises(OrgConfigError, match=message.replace("(", r"\(")):
        org_settings(base, record)


def test_web_api_url_accepts_the_environment_root() -> None:
    assert web_api_url("https://x.crm.dynamics.com/") == "https://x.crm.dynamics.com/api/data/v9.2"
    assert web_api_url("https://x.crm.dynamics.com/api/data/v9.1") == "https://x.crm.dynamics.com/api/data/v9.2"
    assert web_api_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/api/data/v9.2"


def test_entity_round_trip_keeps_secrets_as_names_only() -> None:
    record = org(secret_names={"TWILIO_AUTH_TOKEN": "fab-token"}, enabled=False)
    entity = to_entity(record)
    assert entity["TWILIO_AUTH_TOKEN_SECRET_NAME"] == "fab-token" and "TWILIO_AUTH_TOKEN" not in entity
    back = from_entity(ORG_A, {**entity, "SURPRISE": "x"}, "etag-1")
    assert (back.overrides, back.secret_names, back.enabled) == (record.overrides, record.secret_names, False)
    assert back.unknown == ("SURPRISE",) and back.etag == "etag-1"


# --- the registry --------------------------------------------------------------------------------------------------
def test_add_update_disable_remove(base: Settings) -> None:
    registry = OrgRegistry(MemoryOrgTable(), base)
    added = registry.add(org())
    assert added.org_id == ORG_A and added.updated_at and added.etag
    with pytest.raises(OrgExists, match="registered already"):
        registry.add(org())
    with pytest.raises(OrgConfigError, match="MESSAGE_BODY_COLUMN"):
        registry.add(org(org_id="0b0b0b0b-1111-4222-8333-444455556666", overrides={"MESSAGE_BODY_COLUMN": "X"}))
    disabled = registry.update(ORG_A, lambda r: r.__class__(**{**r.__dict__, "enabled": False}))
    assert registry.get(ORG_A) == disabled and not disabled.enabled
    with pytest.raises(Conflict):
        registry.save(added)  # stale ETag: a concurrent change is never overwritten
    with pytest.raises(UnknownOrg):
        registry.update("0c0c0c0c-1111-4222-8333-444455556666", lambda r: r)
    assert registry.remove(ORG_A) and not registry.remove(ORG_A)
    assert registry.list() == []


def test_lookup_is_cached_for_org_cache_seconds(base: Settings) -> None:
    table, now = MemoryOrgTable(), [0.0]
    registry = OrgRegistry(table, base, cache_seconds=60, clock=lambda: now[0])
    assert registry.lookup(ORG_A) is None and registry.lookup("not-a-guid") is None
    other = OrgRegistry(table, base)  # another instance registers it
    other.add(org())
    found = registry.lookup(ORG_A)  # found at once: an absent answer is never cached
    assert found is not None and found.enabled
    other.update(ORG_A, lambda r: r.__class__(**{**r.__dict__, "enabled": False}))
    assert registry.lookup(ORG_A.upper()) == found  # cached
    now[0] = 61
    assert registry.lookup(ORG_A).enabled is False  # type: ignore[union-attr]


def test_an_org_messaging_service_replaces_the_deployment_number(base: Settings) -> None:
    service = "MG" + "c" * 32
    effective = org_settings(base, org(overrides={"TWILIO_MESSAGING_SERVICE_SID": service}))
    assert (effective.twilio_from, effective.twilio_messaging_service_sid) == (None, service)
    assert org_settings(base, org()).twilio_from == "+447700900001"  # the org's own number
