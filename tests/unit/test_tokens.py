"""The one Dataverse token selection (app, ``channel doctor``, ``channel provision``) and its safeguards."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import pytest

from shared.adapters import tokens as tokens_module
from shared.adapters.tokens import StaticToken, TokenProvider, TokenSelectionError, dataverse_tokens


@dataclass
class Access:
    token: str
    expires_on: int


class RecordingCredential:
    """Shaped like an azure-identity credential: hands out ``value`` (or token-1, token-2, …), records each scope."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> Access:
        self.scopes.append(scopes)
        return Access(self.value or f"token-{len(self.scopes)}", int(time.time()) + 3600)


def test_a_static_token_is_used_for_a_loopback_emulator() -> None:
    for url in ("http://127.0.0.1:8123", "http://localhost:8123/", "http://[::1]:9"):
        tokens = dataverse_tokens(url, static_token=" emulator-token ", credential=RecordingCredential())
        assert isinstance(tokens, StaticToken) and tokens.token() == "emulator-token"


@pytest.mark.parametrize("url", ["https://contoso.crm.dynamics.com", "https://127.0.0.1.nip.io", "https://10.0.0.5"])
def test_a_static_token_is_never_used_against_a_non_loopback_url(url: str) -> None:
    with pytest.raises(TokenSelectionError, match="DATAVERSE_STATIC_TOKEN is only accepted with a loopback"):
        dataverse_tokens(url, static_token="leaked-into-production")


def test_plain_http_to_a_real_host_is_refused_even_with_a_credential() -> None:
    with pytest.raises(TokenSelectionError, match="DATAVERSE_URL must use https"):
        dataverse_tokens("http://contoso.crm.dynamics.com", credential=RecordingCredential())


@pytest.mark.parametrize(
    "url", ["https://contoso.crm.dynamics.com/api/data/v9.2", "contoso.crm.dynamics.com", "https://x.com/?a=1", ""]
)
def test_only_an_environment_root_makes_a_scope(url: str) -> None:
    with pytest.raises(TokenSelectionError, match="DATAVERSE_URL must be the environment URL only"):
        dataverse_tokens(url, credential=RecordingCredential())


def test_a_given_credential_gets_the_environment_scope_and_is_cached() -> None:
    credential = RecordingCredential()
    tokens = dataverse_tokens(" https://contoso.crm.dynamics.com/ ", static_token="  ", credential=credential)
    assert isinstance(tokens, TokenProvider)
    assert tokens.scope == "https://contoso.crm.dynamics.com/.default"
    assert tokens.token() == tokens.token() == "token-1"
    assert tokens.token(force_refresh=True) == "token-2"
    assert credential.scopes == [("https://contoso.crm.dynamics.com/.default",)] * 2


@pytest.mark.parametrize(("client_id", "expected"), [("  1111-client  ", "1111-client"), ("", None), (None, None)])
def test_without_a_credential_the_default_one_uses_azure_client_id(
    monkeypatch: pytest.MonkeyPatch, client_id: str | None, expected: str | None
) -> None:
    made: list[str | None] = []

    def fake_default(cid: str | None) -> RecordingCredential:
        made.append(cid)
        return RecordingCredential()

    monkeypatch.setattr(tokens_module, "default_credential", fake_default)
    tokens = dataverse_tokens("https://contoso.crm.dynamics.com", client_id=client_id)
    assert isinstance(tokens, TokenProvider) and made == [expected]


def test_default_credential_is_the_managed_identity_aware_default_azure_credential() -> None:
    credential = tokens_module.default_credential("2222-client")
    assert type(credential).__name__ == "DefaultAzureCredential"


def test_channel_provision_refuses_a_static_token_for_a_real_org(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import provision

    monkeypatch.setenv("DATAVERSE_STATIC_TOKEN", "dev-token")
    args = ["--dataverse-url", "https://contoso.crm.dynamics.com", "--prefix", "cr123", "--solution", "Sms"]
    args += ["--namespace", "sb-channel", "--queue", "activities", "--sas-key-name", "dataverse-send", "--dry-run"]
    code = provision.main(args, out=io.StringIO())
    assert code == 1
    assert "DATAVERSE_STATIC_TOKEN is only accepted with a loopback DATAVERSE_URL" in capsys.readouterr().err
