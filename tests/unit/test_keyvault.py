"""Per-org provider secrets from Key Vault, against the loopback Key Vault emulator over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from devtools.emulators.keyvault import KeyVaultEmulator
from shared.adapters.keyvault import (
    API_VERSION,
    VAULT_SCOPE,
    KeyVaultConfigError,
    KeyVaultSecrets,
    SecretUnavailable,
    check_secret_name,
    key_vault_secrets,
)
from shared.adapters.tokens import StaticToken, TokenProvider
from shared.domain.errors import TransientError
from tests.unit.test_tokens import RecordingCredential

TOKEN = "vault-token"
VALUE = "s3cr3t-twilio-auth-token-value"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rotating:
    """A token source whose cached token went stale: the first token is refused, a forced refresh gets a good one."""

    def __init__(self) -> None:
        self.forced = 0

    def token(self, *, force_refresh: bool = False) -> str:
        self.forced += force_refresh
        return TOKEN if self.forced else "expired-token"


@pytest.fixture
def vault() -> Iterator[KeyVaultEmulator]:
    with KeyVaultEmulator(token=TOKEN) as emulator:
        emulator.set_secret("contoso-twilio-auth-token", VALUE)
        yield emulator


@pytest.fixture
def clock() -> Clock:
    return Clock()


def secrets(vault: KeyVaultEmulator, clock: Clock, tokens: object | None = None, ttl: float = 300.0) -> KeyVaultSecrets:
    return KeyVaultSecrets(vault.url, tokens or StaticToken(TOKEN), requests.Session(), ttl, clock=clock)  # type: ignore[arg-type]


def test_get_reads_the_latest_version_with_the_api_version_and_bearer(vault: KeyVaultEmulator, clock: Clock) -> None:
    assert secrets(vault, clock).get("contoso-twilio-auth-token") == VALUE
    request = vault.requests[-1]
    assert (request.method, request.path, request.query) == (
        "GET",
        "/secrets/contoso-twilio-auth-token",
        {"api-version": [API_VERSION]},
    )
    assert API_VERSION == "7.5"
    vault.set_secret("contoso-twilio-auth-token", "rotated")
    assert secrets(vault, clock).get("CONTOSO-twilio-auth-token") == "rotated"  # names are case-insensitive


def test_values_are_cached_for_the_ttl_then_read_again(vault: KeyVaultEmulator, clock: Clock) -> None:
    client = secrets(vault, clock, ttl=60)
    assert client.get("contoso-twilio-auth-token") == VALUE
    vault.set_secret("contoso-twilio-auth-token", "rotated")
    clock.now += 59
    assert client.get("contoso-twilio-auth-token") == VALUE
    assert vault.gets("contoso-twilio-auth-token") == 1
    clock.now += 2
    assert client.get("contoso-twilio-auth-token") == "rotated"
    assert vault.gets("contoso-twilio-auth-token") == 2


def test_a_missing_secret_names_the_secret_and_the_fix(vault: KeyVaultEmulator, clock: Clock) -> None:
    with pytest.raises(SecretUnavailable) as caught:
        secrets(vault, clock).get("fabrikam-twilio-auth-token")
    error = caught.value
    assert (error.name, error.status, error.code) == ("fabrikam-twilio-auth-token", 404, "SecretNotFound")
    assert "'fabrikam-twilio-auth-token'" in str(error) and vault.url in str(error)
    assert "az keyvault secret set" in str(error) and "Key Vault Secrets User" in str(error)


def test_a_denied_read_says_to_grant_key_vault_secrets_user(vault: KeyVaultEmulator, clock: Clock) -> None:
    client = secrets(vault, clock, ttl=60)
    assert client.get("contoso-twilio-auth-token") == VALUE
    vault.deny("contoso-twilio-auth-token")
    clock.now += 61
    with pytest.raises(SecretUnavailable, match=r"ForbiddenByRbac.*'Key Vault Secrets User' role") as caught:
        client.get("contoso-twilio-auth-token")  # revoked access: the stale value is not served
    assert caught.value.status == 403


def test_a_disabled_secret_says_so(vault: KeyVaultEmulator, clock: Clock) -> None:
    vault.set_secret("off", "x", enabled=False)
    with pytest.raises(SecretUnavailable, match=r"SecretDisabled.*enable the secret"):
        secrets(vault, clock).get("off")


def test_a_stale_token_is_refreshed_once_then_the_401_is_reported(vault: KeyVaultEmulator, clock: Clock) -> None:
    rotating = Rotating()
    assert secrets(vault, clock, rotating).get("contoso-twilio-auth-token") == VALUE
    assert rotating.forced == 1
    with pytest.raises(SecretUnavailable, match=r"HTTP 401.*resource=\\?\"https://vault.azure.net") as caught:
        secrets(vault, clock, StaticToken("wrong")).get("contoso-twilio-auth-token")
    assert caught.value.code == "Unauthorized"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(vault: KeyVaultEmulator, clock: Clock, status: int) -> None:
    vault.inject(
        "GET",
        "/secrets/",
        status=status,
        body={"error": {"code": "Throttled", "message": "x"}},
        headers={"Retry-After": "7"},
    )
    with pytest.raises(TransientError) as caught:
        secrets(vault, clock).get("contoso-twilio-auth-token")
    assert caught.value.retry_after == 7.0 and f"HTTP {status}" in caught.value.detail


def test_timeouts_and_dropped_connections_are_transient(vault: KeyVaultEmulator, clock: Clock) -> None:
    vault.inject("GET", "/secrets/", status=0)
    with pytest.raises(TransientError, match="unreachable"):
        secrets(vault, clock).get("contoso-twilio-auth-token")
    vault.inject("GET", "/secrets/", status=200, body={"value": "late"}, delay=0.5)
    slow = KeyVaultSecrets(vault.url, StaticToken(TOKEN), requests.Session(), timeout=0.1, clock=clock)
    with pytest.raises(TransientError, match="ReadTimeout"):
        slow.get("contoso-twilio-auth-token")


def test_a_transient_failure_after_the_ttl_serves_the_last_value(
    vault: KeyVaultEmulator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    client = secrets(vault, clock, ttl=60)
    assert client.get("contoso-twilio-auth-token") == VALUE
    clock.now += 61
    vault.inject("GET", "/secrets/", status=503)
    with caplog.at_level(logging.DEBUG, logger="channel"):
        assert client.get("contoso-twilio-auth-token") == VALUE
    assert "keyvault_secret_stale" in caplog.text


def test_no_secret_value_or_token_is_ever_logged(
    vault: KeyVaultEmulator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client = secrets(vault, clock, ttl=0)
        client.get("contoso-twilio-auth-token")
        vault.inject("GET", "/secrets/", status=500)
        client.get("contoso-twilio-auth-token")
        for name in ("missing", "contoso-twilio-auth-token"):
            vault.deny("contoso-twilio-auth-token")
            with pytest.raises(SecretUnavailable) as caught:
                client.get(name)
            assert VALUE not in str(caught.value) and TOKEN not in str(caught.value)
    assert caplog.records and VALUE not in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize("name", ["", "a" * 128, "twilio_auth_token", "a/b", "a.b", "../secrets", "é"])
def test_secret_names_follow_key_vault_rules(vault: KeyVaultEmulator, clock: Clock, name: str) -> None:
    with pytest.raises(KeyVaultConfigError, match="not a Key Vault secret name"):
        secrets(vault, clock).get(name)
    assert check_secret_name("a" * 127) == "a" * 127 and check_secret_name("Twilio-2") == "Twilio-2"
    assert vault.requests == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://kv-contoso.vault.azure.net", "must use https"),
        ("https://kv-contoso.vault.azure.net/secrets", "must be the vault URI only"),
        ("kv-contoso.vault.azure.net", "must be the vault URI only"),
        ("", "must be the vault URI only"),
    ],
)
def test_the_vault_uri_is_https_except_loopback(uri: str, message: str) -> None:
    with pytest.raises(KeyVaultConfigError, match=message):
        KeyVaultSecrets(uri, StaticToken("t"))


def test_the_builder_uses_the_vault_scope_and_keeps_static_tokens_to_loopback(vault: KeyVaultEmulator) -> None:
    credential = RecordingCredential(TOKEN)
    built = key_vault_secrets(vault.url + "/", credential=credential)
    assert built.vault_uri == vault.url and built.get("contoso-twilio-auth-token") == VALUE
    assert credential.scopes == [(VAULT_SCOPE,)] and VAULT_SCOPE == "https://vault.azure.net/.default"
    assert key_vault_secrets(vault.url, static_token=TOKEN).get("contoso-twilio-auth-token") == VALUE
    with pytest.raises(KeyVaultConfigError, match="static token is only accepted with a loopback KEY_VAULT_URI"):
        key_vault_secrets("https://kv-contoso.vault.azure.net", static_token="t")


def test_without_a_credential_the_builder_uses_the_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.adapters import keyvault

    asked: list[str | None] = []
    monkeypatch.setattr(keyvault, "default_credential", lambda cid: asked.append(cid) or RecordingCredential())
    built = key_vault_secrets("https://kv-contoso.vault.azure.net", managed_identity_client_id=" mi-client ")
    assert asked == ["mi-client"] and isinstance(built._tokens, TokenProvider)


# ---------------------------------------------------------------- the emulator is as strict as the service
def test_emulator_requires_api_version_and_bearer(vault: KeyVaultEmulator) -> None:
    url = f"{vault.url}/secrets/contoso-twilio-auth-token"
    no_version = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "BadParameter"
    anonymous = requests.get(url, params={"api-version": "7.5"}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error": {"code": "Unauthorized", "message": "Request is missing a Bearer or PoP token."}
    }
    assert 'resource="https://vault.azure.net"' in anonymous.headers["WWW-Authenticate"]
    ok = requests.get(url, params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    body = ok.json()
    assert body["value"] == VALUE and body["id"].startswith(f"{vault.url}/secrets/contoso-twilio-auth-token/")
    version = body["id"].rsplit("/", 1)[1]
    vault.set_secret("contoso-twilio-auth-token", "v2")
    pinned = requests.get(
        f"{url}/{version}", params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert pinned.json()["value"] == VALUE
    missing = requests.get(
        f"{url}/0000", params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "SecretNotFound"
    put = requests.put(url, params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert put.status_code == 405
    assert all(r.headers.get("Authorization") in (None, "<redacted>") for r in vault.requests)


def test_emulator_command_line_refuses_a_secret_without_a_value() -> None:
    from devtools.emulators.keyvault import main

    with pytest.raises(SystemExit) as caught:
        main(["--secret", "no-value-given"])
    assert caught.value.code == 2
