"""RTJ_AUTH_MODE=entra: the relay's bearer token, checked against a loopback tenant's published keys (real HTTP)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import requests

from shared.adapters.entra_auth import EntraAuthorizer, TenantSigningKeys
from shared.bootstrap import build_authorizer
from shared.domain.models import InboundHttpRequest
from shared.settings import load_settings
from tests.entra import (
    AUDIENCE,
    CLIENT,
    TENANT,
    LoopbackTenant,
    SigningKey,
    hs256_with_public_key,
    token,
    unsigned_token,
)
from tests.unit.test_settings import BASE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tenant() -> Iterator[LoopbackTenant]:
    served = LoopbackTenant()
    yield served
    served.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def authorizer(tenant: LoopbackTenant, clock: FakeClock) -> EntraAuthorizer:
    keys = TenantSigningKeys(
        authority=tenant.url, tenant_id=TENANT, session=requests.Session(), min_refresh_interval=300, clock=clock
    )
    return EntraAuthorizer(audience=AUDIENCE, tenant_id=TENANT, client_id=CLIENT, keys=keys, authority=tenant.url)


def call(auth: EntraAuthorizer, bearer: str | None) -> int:
    headers = {} if bearer is None else {"authorization": f"Bearer {bearer}"}
    reply = auth.authorize(InboundHttpRequest("POST", "/api/rtj/outbound", {}, headers, b"{}"))
    return 200 if reply is None else reply.status


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_a_valid_token_from_the_relay_identity_is_accepted(
    tenant: LoopbackTenant, clock: FakeClock, version: str
) -> None:
    assert call(authorizer(tenant, clock), token(tenant.key, version)) == 200


def test_keys_are_fetched_once_and_cached(tenant: LoopbackTenant, clock: FakeClock) -> None:
    auth = authorizer(tenant, clock)
    for _ in range(5):
        assert call(auth, token(tenant.key)) == 200
    assert tenant.key_fetches() == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"exp": 1_000_000, "iat": 999_000, "nbf": 999_000}, 401),  # expired (long ago)
        ({"aud": "api://someone-else"}, 401),  # wrong audience
        ({"tid": "11111111-2222-3333-4444-555555555555"}, 401),  # wrong tenant (tid)
        ({"iss": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"}, 401),  # issuer
        ({"azp": "99999999-8888-4777-8666-555555555555"}, 403),  # valid token, wrong client
        ({"exp": None}, 401),  # exp is required
    ],
    ids=["expired", "wrong-audience", "wrong-tenant", "wrong-issuer", "wrong-client", "no-exp"],
)
def test_refusals(tenant: LoopbackTenant, clock: FakeClock, overrides: dict[str, object], expected: int) -> None:
    assert call(authorizer(tenant, clock), token(tenant.key, **overrides)) == expected


def test_v1_token_checks_appid_not_azp(tenant: LoopbackTenant, clock: FakeClock) -> None:
    other = "99999999-8888-4777-8666-555555555555"
    assert call(authorizer(tenant, clock), token(tenant.key, "1.0", appid=other, azp=CLIENT)) == 403


def test_clock_skew_is_bounded(tenant: LoopbackTenant, clock: FakeClock) -> None:
    import time

    now = int(time.time())
    auth = authorizer(tenant, clock)
    assert call(auth, token(tenant.key, exp=now - 120)) == 200  # 2 minutes late: inside the 5-minute skew
    assert call(auth, token(tenant.key, exp=now - 600)) == 401  # 10 minutes late
    assert call(auth, token(tenant.key, nbf=now + 600)) == 401  # not valid for another 10 minutes


@pytest.mark.parametrize(
    "make",
    [
        lambda key: unsigned_token(key.kid),
        hs256_with_public_key,
        lambda key: token(SigningKey(kid=key.kid)),  # right kid, signed by someone else's key
        lambda key: "not-a-jwt",
    ],
    ids=["alg-none", "hs256-public-key-as-secret", "forged-signature", "garbage"],
)
def test_hostile_tokens_are_401(tenant: LoopbackTenant, clock: FakeClock, make: object) -> None:
    assert call(authorizer(tenant, clock), make(tenant.key)) == 401  # type: ignore[operator]


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer "])
def test_missing_bearer_is_401(tenant: LoopbackTenant, clock: FakeClock, header: str | None) -> None:
    auth = authorizer(tenant, clock)
    headers = {} if header is None else {"authorization": header}
    reply = auth.authorize(InboundHttpRequest("POST", "/", {}, headers, b""))
    assert reply is not None and reply.status == 401
    assert tenant.requests == []  # nothing fetched for a request without a token


def test_key_rotation_one_refresh_then_rate_limited(tenant: LoopbackTenant, clock: FakeClock) -> None:
    auth = authorizer(tenant, clock)
    assert call(auth, token(tenant.key)) == 200
    assert tenant.key_fetches() == 1
    rotated = SigningKey()
    tenant.keys.append(rotated)
    clock.now += 301  # past the refresh interval
    assert call(auth, token(rotated)) == 200  # unknown kid → one refresh → accepted
    assert tenant.key_fetches() == 2
    stranger = SigningKey()
    assert call(auth, token(stranger)) == 401  # a second unknown kid inside the interval: no new fetch
    assert call(auth, token(stranger)) == 401
    assert tenant.key_fetches() == 2


def test_metadata_down_is_503_not_500_not_open(
    tenant: LoopbackTenant, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    tenant.down = True
    auth = authorizer(tenant, clock)
    bearer = token(tenant.key)
    with caplog.at_level(logging.INFO):
        assert call(auth, bearer) == 503
    assert bearer not in caplog.text and "signing keys unavailable" in caplog.text
    assert call(auth, bearer) == 503  # backoff: not refetched at once
    fetches = len(tenant.requests)
    tenant.down = False
    clock.now += 11
    assert call(auth, bearer) == 200
    assert len(tenant.requests) > fetches


def test_cached_keys_survive_an_outage(tenant: LoopbackTenant, clock: FakeClock) -> None:
    auth = authorizer(tenant, clock)
    assert call(auth, token(tenant.key)) == 200
    tenant.down = True
    clock.now += 25 * 3600  # cache expired, refresh fails: the keys already read keep working
    assert call(auth, token(tenant.key)) == 200


def test_refusals_are_logged_with_a_reason_never_the_token(
    tenant: LoopbackTenant, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    bearer = token(tenant.key, aud="api://someone-else")
    with caplog.at_level(logging.INFO):
        call(authorizer(tenant, clock), bearer)
    assert "wrong audience" in caplog.text
    assert bearer not in caplog.text and bearer.split(".")[1] not in caplog.text


# --- mode selection: fail closed ------------------------------------------------------------------
ENTRA = {"RTJ_TOKEN_AUDIENCE": AUDIENCE, "RTJ_TOKEN_TENANT_ID": TENANT, "RTJ_TOKEN_CLIENT_ID": CLIENT}


def reply_for(env: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, str]:
    auth = build_authorizer(load_settings({**BASE, **env}), requests.Session())
    reply = auth.authorize(InboundHttpRequest("POST", "/", {}, headers or {}, b""))
    return (200, "") if reply is None else (reply.status, json.loads(reply.body)["error"])


def test_default_mode_is_entra_and_unconfigured_is_503_naming_the_settings() -> None:
    assert load_settings(BASE).rtj_auth_mode == "entra"
    status, message = reply_for({})
    assert status == 503
    assert all(name in message for name in ENTRA)


@pytest.mark.parametrize("missing", sorted(ENTRA))
def test_each_missing_entra_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in ENTRA.items() if k != missing}
    status, message = reply_for(env, {"authorization": "Bearer x"})
    assert status == 503 and missing in message


def test_secret_mode_without_a_secret_is_503() -> None:
    status, message = reply_for({"RTJ_AUTH_MODE": "secret"}, {"x-channel-secret": "a" * 30})
    assert status == 503 and "RTJ_OUTBOUND_SECRET" in message


def test_secret_mode_checks_x_channel_secret() -> None:
    env = {"RTJ_AUTH_MODE": "secret", "RTJ_OUTBOUND_SECRET": "s" * 32}
    assert reply_for(env, {"x-channel-secret": "s" * 32})[0] == 200
    assert reply_for(env, {"x-channel-secret": "t" * 32})[0] == 403
    assert reply_for(env)[0] == 401


def test_entra_mode_builds_the_token_authorizer(tenant: LoopbackTenant) -> None:
    env = {**ENTRA, "RTJ_TOKEN_AUTHORITY": tenant.url}
    assert reply_for(env, {"authorization": f"Bearer {token(tenant.key)}"})[0] == 200
    assert reply_for(env, {"x-channel-secret": "s" * 32})[0] == 401  # a shared secret means nothing in entra mode


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RTJ_AUTH_MODE": "open"}, "RTJ_AUTH_MODE"),
        ({"RTJ_TOKEN_TENANT_ID": "contoso.onmicrosoft.com"}, "RTJ_TOKEN_TENANT_ID"),
        ({"RTJ_TOKEN_CLIENT_ID": "relay"}, "RTJ_TOKEN_CLIENT_ID"),
        ({"RTJ_TOKEN_AUTHORITY": "http://login.example.com"}, "RTJ_TOKEN_AUTHORITY"),
        ({"RTJ_OUTBOUND_SECRET": "short"}, "RTJ_OUTBOUND_SECRET"),
    ],
)
def test_invalid_values_fail_at_start_up_naming_the_setting(env: dict[str, str], named: str) -> None:
    from shared.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match=named):
        load_settings({**BASE, **env})


def test_a_blank_authority_means_the_public_cloud() -> None:
    assert load_settings({**BASE, "RTJ_TOKEN_AUTHORITY": ""}).rtj_token_authority == "https://login.microsoftonline.com"


def test_a_malformed_key_entry_does_not_hide_the_good_ones(tenant: LoopbackTenant, clock: FakeClock) -> None:
    from shared.adapters.entra_auth import TenantSigningKeys

    document = {
        "keys": [
            {"kty": "RSA", "kid": "broken", "e": "AQAB"},  # no modulus
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "x", "y": "y"},
            tenant.key.jwk(),
        ]
    }
    assert set(TenantSigningKeys._parse(document)) == {tenant.key.kid}


@pytest.mark.parametrize(
    ("given", "mode"), [("", "entra"), ("  ", "entra"), ("Secret", "secret"), (" ENTRA ", "entra")]
)
def test_auth_mode_blank_is_the_default_and_case_is_forgiven(given: str, mode: str) -> None:
    assert load_settings({**BASE, "RTJ_AUTH_MODE": given}).rtj_auth_mode == mode
