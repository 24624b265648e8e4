"""#11 defect 9: a secret setting that still holds an unresolved ``@Microsoft.KeyVault(...)`` reference is treated as
missing. The app starts, the endpoint that needs it refuses with 503 naming the setting (never the value), and
nothing signs or verifies with the literal."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from shared.adapters.secret_gate import UnavailableQueue
from shared.bootstrap import build_authorizer, build_provider
from shared.domain.errors import CallbackRejected, SendFailedTransient, TransientError
from shared.domain.models import InboundHttpRequest, SendRequest
from shared.secret_settings import SECRET_SETTINGS, is_key_vault_reference
from shared.settings import ConfigurationError, Settings, load_settings
from tests.unit.test_acs_settings import acs_env
from tests.unit.test_settings import BASE

LITERALS = [
    "@Microsoft.KeyVault(SecretUri=https://kv-contoso.vault.azure.net/secrets/twilio-auth-token/)",
    "@Microsoft.KeyVault(VaultName=kv-contoso;SecretName=rtj-outbound-secret)",
    "  @microsoft.keyvault(VaultName=kv-contoso;SecretName=x)",
]
LITERAL = LITERALS[1]


class NoNetwork(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise AssertionError("nothing may be sent with an unresolved secret")


def signed_like_twilio(key: str) -> InboundHttpRequest:
    from shared.providers import twilio_signature

    url = "https://myapp.azurewebsites.net/api/callbacks/twilio"
    params = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered")]
    signature = twilio_signature.compute_signature(key, url, params)
    body = "&".join(f"{k}={v}" for k, v in params).encode()
    headers = {"x-twilio-signature": signature, "content-type": "application/x-www-form-urlencoded"}
    return InboundHttpRequest("POST", "/api/callbacks/twilio", {}, headers, body)


@pytest.mark.parametrize("literal", LITERALS)
def test_the_reference_syntaxes_are_recognised(literal: str) -> None:
    assert is_key_vault_reference(literal)
    assert not is_key_vault_reference("a-real-secret-that-mentions-@Microsoft.KeyVault(")


def test_every_secret_setting_is_covered() -> None:
    aliases = {f.validation_alias for f in Settings.model_fields.values() if f.repr is False}
    assert aliases <= set(SECRET_SETTINGS)  # every field hidden from repr is a secret the rule covers
    assert {"ServiceBusConnection", "AzureWebJobsStorage", "DATAVERSE_STATIC_TOKEN"} <= set(SECRET_SETTINGS)


@pytest.mark.parametrize(
    "setting", ["TWILIO_AUTH_TOKEN", "RTJ_OUTBOUND_SECRET", "DATAVERSE_STATIC_TOKEN", "ServiceBusConnection"]
)
def test_the_app_starts_and_the_setting_is_unset_and_listed(setting: str, caplog: pytest.LogCaptureFixture) -> None:
    env = {**BASE, setting: LITERAL}
    with caplog.at_level(logging.INFO):
        settings = load_settings(env)
    assert settings.unresolved_secrets == (setting,)
    assert LITERAL not in settings.model_dump_json()
    assert f"setting={setting}" in caplog.text and "kv-contoso" not in caplog.text


def test_the_unresolved_list_cannot_be_set_from_outside() -> None:
    settings = load_settings({**BASE, "__unresolved_key_vault_references__": "TWILIO_AUTH_TOKEN"})
    assert settings.unresolved_secrets == ()


def test_twilio_callbacks_are_503_and_never_verified_with_the_literal() -> None:
    provider = build_provider(load_settings({**BASE, "TWILIO_AUTH_TOKEN": LITERAL}), NoNetwork())
    with pytest.raises(CallbackRejected) as refused:
        provider.handle_callback(signed_like_twilio(LITERAL))  # signed with the guessable literal
    assert refused.value.status == 503 and "TWILIO_AUTH_TOKEN" in refused.value.detail
    assert LITERAL not in refused.value.detail


def test_twilio_sends_fail_transient_without_calling_twilio() -> None:
    provider = build_provider(load_settings({**BASE, "TWILIO_AUTH_TOKEN": LITERAL}), NoNetwork())
    with pytest.raises(SendFailedTransient, match="TWILIO_AUTH_TOKEN") as failed:
        provider.send(SendRequest("+447700900123", "hi", "row", "https://x/cb", "key"))
    assert failed.value.retry_safe


def test_acs_eventgrid_secret_unresolved_refuses_deliveries_with_503_even_with_the_literal() -> None:
    provider = build_provider(load_settings(acs_env(ACS_EVENTGRID_SECRET=LITERAL)), NoNetwork(), object())
    for request in (
        InboundHttpRequest("POST", "/api/callbacks/acs", {"secret": LITERAL}, {}, b"[]"),
        InboundHttpRequest("POST", "/api/callbacks/acs", {}, {"x-channel-secret": LITERAL}, b"[]"),
    ):
        with pytest.raises(CallbackRejected) as refused:
            provider.handle_callback(request)
        assert refused.value.status == 503 and "ACS_EVENTGRID_SECRET" in refused.value.detail


def test_acs_access_key_unresolved_blocks_sends_instead_of_switching_to_entra() -> None:
    provider = build_provider(load_settings(acs_env(ACS_ACCESS_KEY=LITERAL)), NoNetwork(), object())
    with pytest.raises(SendFailedTransient, match="ACS_ACCESS_KEY"):
        provider.send(SendRequest("+447700900123", "hi", "row", "https://x/cb", "key"))


def test_loopback_signing_key_unresolved_refuses_callbacks() -> None:
    env = {
        **BASE,
        "CHANNEL_PROVIDER": "loopback",
        "LOOPBACK_PROVIDER_URL": "http://127.0.0.1:9",
        "LOOPBACK_SIGNING_KEY": LITERAL,
    }
    provider = build_provider(load_settings(env), NoNetwork())
    with pytest.raises(CallbackRejected) as refused:
        provider.handle_callback(InboundHttpRequest("POST", "/api/callbacks/loopback", {}, {}, b"{}"))
    assert refused.value.status == 503 and "LOOPBACK_SIGNING_KEY" in refused.value.detail


@pytest.mark.parametrize("given", [LITERAL, "x" * 32, None])
def test_rtj_secret_unresolved_is_503_naming_it(given: str | None, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({**BASE, "RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": LITERAL})
    headers = {} if given is None else {"x-channel-secret": given}
    with caplog.at_level(logging.INFO):
        reply = build_authorizer(settings, NoNetwork()).authorize(InboundHttpRequest("POST", "/", {}, headers, b""))
    assert reply is not None and reply.status == 503
    assert "RTJ_OUTBOUND_SECRET" in json.loads(reply.body)["error"]
    assert "RTJ_OUTBOUND_SECRET" in caplog.text and "kv-contoso" not in caplog.text


def test_service_bus_connection_unresolved_fails_publishes_naming_it() -> None:
    with pytest.raises(TransientError, match="ServiceBusConnection"):
        UnavailableQueue("ServiceBusConnection").publish("callbacks", b"{}")


def test_an_identity_alternative_is_still_used() -> None:
    env = {
        **BASE,
        "ServiceBusConnection": LITERAL,
        "ServiceBusConnection__fullyQualifiedNamespace": "x.servicebus.windows.net",
    }
    settings = load_settings(env)
    assert settings.service_bus_connection is None and settings.service_bus_namespace == "x.servicebus.windows.net"


def test_storage_unresolved_without_an_alternative_fails_at_start_up_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage: holds an unresolved Key Vault reference"):
        load_settings({**BASE, "AzureWebJobsStorage": LITERAL})
    assert load_settings({**BASE, "AzureWebJobsStorage": LITERAL, "AzureWebJobsStorage__accountName": "st1"})
