"""ACS settings: required values, the Event Grid secret, endpoint rules, and the provider bootstrap builds."""

from __future__ import annotations

import pytest
import requests

from shared.bootstrap import build_provider
from shared.providers.acs import AcsProvider
from shared.settings import ConfigurationError, load_settings
from tests.unit.test_settings import settings_with

ACS = {
    "CHANNEL_PROVIDER": "acs",
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_FROM": None,
    "ACS_ENDPOINT": "https://contoso-sms.communication.azure.com/",
    "ACS_FROM": "+18005550100",
    "ACS_EVENTGRID_SECRET": "s3cr3t-s3cr3t-s3cr3t-s3cr3t",
}


def acs_env(**changes: str | None) -> dict[str, str]:
    return settings_with(**{**ACS, **changes})


def test_valid_acs_settings() -> None:
    s = load_settings(acs_env())
    assert s.acs_endpoint == "https://contoso-sms.communication.azure.com"
    assert s.acs_access_key is None
    assert s.callback_url("acs") == "https://myapp.azurewebsites.net/api/callbacks/acs"
    assert "s3cr3t" not in repr(s)
    assert load_settings(acs_env(ACS_FROM="Contoso", ACS_ACCESS_KEY="a2V5a2V5a2V5")).acs_from == "Contoso"
    assert load_settings(acs_env(ACS_ENDPOINT="http://127.0.0.1:8123")).acs_endpoint == "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ACS_ENDPOINT": None}, "ACS_ENDPOINT: required"),
        ({"ACS_ENDPOINT": "http://contoso.communication.azure.com"}, "ACS_ENDPOINT must use https"),
        ({"ACS_ENDPOINT": "https://contoso.communication.azure.com/sms"}, "ACS_ENDPOINT must be the resource URL"),
        ({"ACS_FROM": None}, "ACS_FROM: required"),
        ({"ACS_FROM": "0800 555"}, "ACS_FROM: must be an E.164"),
        ({"ACS_ACCESS_KEY": "not base64!"}, "ACS_ACCESS_KEY: must be the resource's base64"),
        ({"ACS_EVENTGRID_SECRET": None}, "ACS_EVENTGRID_SECRET: required"),
        ({"ACS_EVENTGRID_SECRET": "short-secret"}, "ACS_EVENTGRID_SECRET: must be at least 24"),
        ({"ACS_EVENTGRID_SECRET": "has spaces in it, which break URLs"}, "ACS_EVENTGRID_SECRET: must be at least 24"),
    ],
)
def test_invalid_acs_settings(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings(acs_env(**changes))
    assert message in str(error.value)
    assert "not available in this build" not in str(error.value)


def test_build_provider_uses_the_key_or_the_shared_credential() -> None:
    credential = object()
    keyed = build_provider(load_settings(acs_env(ACS_ACCESS_KEY="a2V5a2V5")), requests.Session(), credential)
    assert isinstance(keyed, AcsProvider) and keyed._access_key == "a2V5a2V5" and keyed._credential is None
    entra = build_provider(load_settings(acs_env()), requests.Session(), credential)
    assert isinstance(entra, AcsProvider) and entra._access_key is None and entra._credential is credential
