"""Relay authentication through the real HTTP trigger (``POST /api/rtj/outbound`` the way the worker calls it):
entra mode against a loopback tenant's published keys, fail-closed modes, and unresolved Key Vault references."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared import bootstrap
from shared.settings import load_settings
from tests.entra import AUDIENCE, CLIENT, TENANT, LoopbackTenant, token
from tests.integration.conftest import Channel
from tests.integration.test_rtj import OUTBOUND, payload

LITERAL = "@Microsoft.KeyVault(VaultName=kv-contoso;SecretName=rtj-outbound-secret)"


@pytest.fixture
def tenant() -> Iterator[LoopbackTenant]:
    served = LoopbackTenant()
    yield served
    served.stop()


def reconfigure(channel: Channel, **changes: str | None) -> None:
    env = {**channel.env, **{k: v for k, v in changes.items() if v is not None}}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=channel.host.queue))


def entra(channel: Channel, tenant: LoopbackTenant) -> None:
    reconfigure(
        channel,
        RTJ_AUTH_MODE="entra",
        RTJ_TOKEN_AUDIENCE=AUDIENCE,
        RTJ_TOKEN_TENANT_ID=TENANT,
        RTJ_TOKEN_CLIENT_ID=CLIENT,
        RTJ_TOKEN_AUTHORITY=tenant.url,
        RTJ_OUTBOUND_SECRET=None,
    )


def post(channel: Channel, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    response = channel.host.call_http(
        "POST",
        channel.callback_base + OUTBOUND,
        headers={"Content-Type": "application/json", **headers},
        body=json.dumps(payload()).encode(),
    )
    return response.status_code, json.loads(response.get_body() or b"{}")


def test_entra_token_from_the_relay_identity_sends(channel: Channel, tenant: LoopbackTenant) -> None:
    entra(channel, tenant)
    status, answer = post(channel, {"Authorization": f"Bearer {token(tenant.key)}"})
    assert status == 200 and answer["Status"] == "Sent"
    assert len(channel.twilio.messages) == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda key: {}, 401),
        (lambda key: {"Authorization": f"Bearer {token(key, aud='api://other')}"}, 401),
        (lambda key: {"Authorization": f"Bearer {token(key, azp='99999999-8888-4777-8666-555555555555')}"}, 403),
        (lambda key: {"X-Channel-Secret": "rtj-integration-secret-0123456789"}, 401),
    ],
    ids=["no-token", "wrong-audience", "wrong-client", "a-secret-in-entra-mode"],
)
def test_entra_refusals_send_nothing(channel: Channel, tenant: LoopbackTenant, make: object, expected: int) -> None:
    entra(channel, tenant)
    assert post(channel, make(tenant.key))[0] == expected  # type: ignore[operator]
    assert channel.twilio.messages == []


def test_entra_keys_unreachable_is_503(channel: Channel, tenant: LoopbackTenant) -> None:
    entra(channel, tenant)
    tenant.down = True
    status, _ = post(channel, {"Authorization": f"Bearer {token(tenant.key)}"})
    assert status == 503 and channel.twilio.messages == []


def test_unconfigured_entra_is_503_naming_the_settings(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RTJ_AUTH_MODE")  # load_settings also reads the process environment
    monkeypatch.delenv("RTJ_OUTBOUND_SECRET")
    reconfigure(channel, RTJ_AUTH_MODE=None, RTJ_OUTBOUND_SECRET=None)
    status, answer = post(channel, {"Authorization": "Bearer x"})
    assert status == 503 and "RTJ_TOKEN_AUDIENCE" in str(answer["error"])


def test_unresolved_rtj_secret_is_503_even_when_the_literal_is_sent(channel: Channel) -> None:
    reconfigure(channel, RTJ_OUTBOUND_SECRET=LITERAL)
    status, answer = post(channel, {"X-Channel-Secret": LITERAL})
    assert status == 503 and "RTJ_OUTBOUND_SECRET" in str(answer["error"])
    assert channel.twilio.messages == []


def test_unresolved_twilio_token_refuses_callbacks_with_503(channel: Channel) -> None:
    reconfigure(channel, TWILIO_AUTH_TOKEN=LITERAL)
    response = channel.host.call_http(
        "POST",
        channel.callback_base + "/api/callbacks/twilio?activity=x",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "forged"},
        body=b"MessageSid=SM1&MessageStatus=delivered",
    )
    assert response.status_code == 503 and b"TWILIO_AUTH_TOKEN" in response.get_body()
