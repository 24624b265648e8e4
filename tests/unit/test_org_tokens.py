"""Per-org Dataverse tokens: the managed identity as the federated credential of the ISV's multi-tenant app.

Two layers: injected fakes at the credential seam (caching, thread safety, safeguards), and the real azure-identity
classes end to end on loopback: ``ManagedIdentityCredential`` against an App Service managed identity endpoint
(``IDENTITY_ENDPOINT``, plain http on localhost as on the platform) and ``ClientAssertionCredential`` against an Entra
token endpoint served over https with a test CA (``authority`` + ``connection_verify``, no patching).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters import org_tokens as module
from shared.adapters.org_tokens import (
    TOKEN_EXCHANGE_SCOPE,
    ManagedIdentityAssertion,
    OrgSignInError,
    OrgTokens,
    environment_root,
    federated_credential_factory,
    org_tokens,
)
from shared.adapters.tokens import REFRESH_MARGIN_SECONDS, StaticToken, TokenProvider, TokenSelectionError
from shared.domain.errors import TransientError
from tests.identity_servers import EntraTokenEndpoint, ManagedIdentityEndpoint
from tests.unit.test_tokens import Access, RecordingCredential

TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
APP = "3c1d9e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
Endpoints = tuple[ManagedIdentityEndpoint, EntraTokenEndpoint]
MI = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ORG_A = "https://contoso.crm.dynamics.com"
ORG_B = "https://fabrikam.crm4.dynamics.com"


class Factory:
    """Credential factory fake: one RecordingCredential per call, recorded by tenant."""

    def __init__(self) -> None:
        self.made: list[tuple[str, RecordingCredential]] = []
        self.lock = threading.Lock()

    def __call__(self, tenant_id: str) -> RecordingCredential:
        time.sleep(0.01)  # widen any race between threads building the same tenant
        credential = RecordingCredential()
        with self.lock:
            self.made.append((tenant_id, credential))
        return credential


# ---------------------------------------------------------------- fakes at the credential seam
def test_one_credential_per_tenant_and_one_cached_provider_per_environment() -> None:
    factory = Factory()
    tokens = OrgTokens(factory)
    a = tokens.tokens_for(ORG_A + "/api/data/v9.2", TENANT_A.upper())
    assert isinstance(a, TokenProvider) and a.scope == f"{ORG_A}/.default"
    assert tokens.tokens_for(ORG_A + "/", TENANT_A) is a  # Web API URL, root and case all name the same org
    other_org_same_tenant = tokens.tokens_for("https://contoso-dev.crm.dynamics.com", TENANT_A)
    b = tokens.tokens_for(ORG_B, TENANT_B)
    assert [tenant for tenant, _ in factory.made] == [TENANT_A, TENANT_B]
    assert a.token() == a.token() == "token-1"  # cached by the provider
    assert other_org_same_tenant.token() == "token-2"  # same tenant credential, its own scope
    assert b.token() == "token-1"
    assert factory.made[0][1].scopes == [(f"{ORG_A}/.default",), ("https://contoso-dev.crm.dynamics.com/.default",)]
    assert factory.made[1][1].scopes == [(f"{ORG_B}/.default",)]


def test_concurrent_first_use_builds_each_tenant_credential_once() -> None:
    factory = Factory()
    tokens = OrgTokens(factory)
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def worker(i: int) -> None:
        barrier.wait()
        seen.append(tokens.tokens_for(ORG_A if i % 2 else ORG_B, TENANT_A if i % 2 else TENANT_B))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(tenant for tenant, _ in factory.made) == [TENANT_A, TENANT_B]
    assert len({id(s) for s in seen}) == 2
    assert tokens.credential_for(TENANT_A) is factory.made[[t for t, _ in factory.made].index(TENANT_A)][1]


@pytest.mark.parametrize(
    "url",
    [
        "https://contoso.crm.dynamics.com/api/data",
        "https://contoso.crm.dynamics.com/XRMServices/2011",
        "https://contoso.crm.dynamics.com/?x=1",
        "contoso.crm.dynamics.com",
        "ftp://contoso.crm.dynamics.com",
        "",
    ],
)
def test_an_org_url_that_cannot_make_a_scope_is_refused(url: str) -> None:
    with pytest.raises(TokenSelectionError, match="must be the environment URL"):
        OrgTokens(Factory()).tokens_for(url, TENANT_A)


def test_plain_http_is_refused_for_a_real_org_and_allowed_for_loopback() -> None:
    with pytest.raises(TokenSelectionError, match="must use https"):
        OrgTokens(Factory()).tokens_for("http://contoso.crm.dynamics.com", TENANT_A)
    assert environment_root("http://127.0.0.1:8123/api/data/v9.2") == "http://127.0.0.1:8123"


@pytest.mark.parametrize("tenant", ["contoso.onmicrosoft.com", "common", "organizations", "", TENANT_A + "0"])
def test_the_tenant_must_be_a_guid(tenant: str) -> None:
    with pytest.raises(TokenSelectionError, match="must be the customer's Entra tenant id"):
        OrgTokens(Factory()).tokens_for(ORG_A, tenant)


def test_a_static_token_serves_loopback_orgs_only() -> None:
    factory = Factory()
    tokens = OrgTokens(factory, static_token=" emulator-token ")
    for url in ("http://127.0.0.1:8123/api/data/v9.2", "http://localhost:9", "http://[::1]:9"):
        source = tokens.tokens_for(url, TENANT_A)
        assert isinstance(source, StaticToken) and source.token() == "emulator-token"
    with pytest.raises(TokenSelectionError, match="DATAVERSE_STATIC_TOKEN is only accepted for loopback org URLs"):
        tokens.tokens_for(ORG_A, TENANT_A)
    assert factory.made == []


def test_without_the_app_registration_a_real_org_is_refused_naming_the_setting() -> None:
    tokens = org_tokens(app_client_id=" ", managed_identity_client_id=MI, static_token="t")
    assert tokens.tokens_for("http://127.0.0.1:1", TENANT_A).token() == "t"
    with pytest.raises(TokenSelectionError, match="DATAVERSE_STATIC_TOKEN is only accepted"):
        tokens.tokens_for(ORG_A, TENANT_A)
    with pytest.raises(TokenSelectionError, match="ORG_APP_CLIENT_ID is required with MULTI_ORG=true"):
        org_tokens(app_client_id=None, managed_identity_client_id=MI).tokens_for(ORG_A, TENANT_A)


def test_the_assertion_is_the_managed_identity_token_for_the_exchange_audience_cached_until_near_expiry() -> None:
    class Expiring(RecordingCredential):
        lifetime = 3600

        def get_token(self, *scopes: str) -> Access:
            access = super().get_token(*scopes)
            return Access(access.token, int(time.time()) + self.lifetime)

    mi = Expiring()
    assertion = ManagedIdentityAssertion(mi)
    assert assertion() == assertion() == "token-1"
    assert mi.scopes == [(TOKEN_EXCHANGE_SCOPE,)] and TOKEN_EXCHANGE_SCOPE == "api://AzureADTokenExchange/.default"
    mi.lifetime = REFRESH_MARGIN_SECONDS - 1  # the next one is already inside the refresh margin
    assert assertion.acquisitions == 1
    short = ManagedIdentityAssertion(mi)
    assert short() == "token-2" and short() == "token-3"  # refreshed every time it is nearly expired


def test_org_tokens_wires_the_managed_identity_and_the_app_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, object]] = []

    class FakeClientAssertionCredential:
        def __init__(self, tenant_id: str, client_id: str, func: object, **kwargs: object) -> None:
            made.append({"tenant_id": tenant_id, "client_id": client_id, "func": func, **kwargs})

        def get_token(self, *scopes: str) -> Access:
            assert callable(made[-1]["func"])
            return Access(f"dv:{made[-1]['func']()}", int(time.time()) + 3600)  # type: ignore[operator]

    import azure.identity

    mi = RecordingCredential("mi-token")
    asked: list[str | None] = []
    monkeypatch.setattr(azure.identity, "ClientAssertionCredential", FakeClientAssertionCredential)
    monkeypatch.setattr(module, "managed_identity_credential", lambda cid: asked.append(cid) or mi)
    tokens = org_tokens(
        app_client_id=f" {APP} ", managed_identity_client_id=f" {MI} ", authority="https://login.example/"
    )
    assert tokens.tokens_for(ORG_A, TENANT_A).token() == "dv:mi-token"
    assert asked == [MI]
    assert made == [
        {"tenant_id": TENANT_A, "client_id": APP, "func": made[0]["func"], "authority": "https://login.example"}
    ]
    assert mi.scopes == [(TOKEN_EXCHANGE_SCOPE,)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_client_id": "my-app"}, "ORG_APP_CLIENT_ID 'my-app' must be the application"),
        ({"app_client_id": APP, "authority": "http://login.microsoftonline.com"}, "ORG_TOKEN_AUTHORITY .* https"),
    ],
)
def test_bad_app_registration_settings_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(TokenSelectionError, match=message):
        federated_credential_factory(assertion=lambda: "a", **kwargs)


# ---------------------------------------------------------------- the real azure-identity classes on loopback
def test_the_real_client_assertion_credential_is_built_for_the_tenant_app_and_authority() -> None:
    from azure.identity import ClientAssertionCredential

    make = federated_credential_factory(
        app_client_id=APP, assertion=lambda: "x", authority="https://login.microsoftonline.us/"
    )
    credential = make(TENANT_B)
    assert isinstance(credential, ClientAssertionCredential)
    client = credential._client  # the AadClient: where the tenant, client id and authority end up
    assert (client._tenant_id, client._client_id, client._authority) == (
        TENANT_B,
        APP,
        "https://login.microsoftonline.us",
    )


def test_managed_identity_credential_is_the_user_assigned_one() -> None:
    from azure.identity import ManagedIdentityCredential

    assert isinstance(module.managed_identity_credential(MI), ManagedIdentityCredential)


@pytest.fixture
def identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[ManagedIdentityEndpoint, EntraTokenEndpoint]]:
    mi, entra = ManagedIdentityEndpoint(), EntraTokenEndpoint(tmp_path)
    for name in (
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", mi.url)
    monkeypatch.setenv("IDENTITY_HEADER", mi.header)
    yield mi, entra
    mi.stop()
    entra.stop()


def test_end_to_end_with_real_azure_identity_on_loopback(
    identity: Endpoints,
) -> None:
    mi, entra = identity
    mi_credential = module.managed_identity_credential(MI)
    factory = federated_credential_factory(
        app_client_id=APP,
        assertion=ManagedIdentityAssertion(mi_credential),
        authority=entra.authority,
        connection_verify=str(entra.ca_path),
    )
    tokens = org_tokens(app_client_id=APP, managed_identity_client_id=MI, credential_factory=factory)
    a = tokens.tokens_for(ORG_A + "/api/data/v9.2", TENANT_A)
    b = tokens.tokens_for(ORG_B, TENANT_B)
    assert a.token() == f"dv-{TENANT_A}-1"
    assert b.token() == f"dv-{TENANT_B}-2"
    assert a.token() == f"dv-{TENANT_A}-1"  # cached: no new request

    # The managed identity endpoint was asked once, for the exchange audience, as the user-assigned identity.
    assert [r["query"] for r in mi.requests] == [
        {"api-version": "2019-08-01", "resource": "api://AzureADTokenExchange", "client_id": MI}
    ]
    # Each tenant got a client-credentials request from the app registration, with the MI token as assertion.
    assert [(r["path"], r["form"]) for r in entra.requests] == [
        (
            f"/{tenant}/oauth2/v2.0/token",
            {
                "client_assertion": "mi-assertion-1",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_id": APP,
                "grant_type": "client_credentials",
                "scope": f"{org}/.default",
            },
        )
        for tenant, org in ((TENANT_A, ORG_A), (TENANT_B, ORG_B))
    ]


def test_without_the_test_ca_the_loopback_authority_is_not_trusted(
    identity: Endpoints,
) -> None:
    from azure.core.exceptions import ServiceRequestError

    _, entra = identity
    factory = federated_credential_factory(
        app_client_id=APP, assertion=lambda: "mi-assertion-x", authority=entra.authority, retry_total=0
    )
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        OrgTokens(factory).tokens_for(ORG_A, TENANT_A).token()


def test_a_rejected_assertion_surfaces_entras_error(identity: Endpoints) -> None:
    _, entra = identity
    factory = federated_credential_factory(
        app_client_id=APP,
        assertion=lambda: "not-a-mi-token",
        authority=entra.authority,
        connection_verify=str(entra.ca_path),
    )
    with pytest.raises(OrgSignInError, match=r"AADSTS700211.*fix: no federated credential on the app") as caught:
        OrgTokens(factory).tokens_for(ORG_A, TENANT_A).token()
    assert caught.value.code == "AADSTS700211"


# ---------------------------------------------------------------- sign-in failures name the tenant and the fix
class Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_token(self, *scopes: str) -> Access:
        raise self.error


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (
            "AADSTS700016: Application with identifier '3c1d' was not found in the directory 'Fabrikam'.",
            f"open https://login.microsoftonline.com/{TENANT_B}/adminconsent?client_id={APP}",
        ),
        ("AADSTS90002: Tenant '2222' not found.", "correct the org's TenantId"),
        ("AADSTS700211: No matching federated identity record found", "subject (the managed identity's object id)"),
        ("AADSTS50000: something new", "see Entra's message"),
    ],
)
def test_an_entra_refusal_names_the_tenant_and_the_fix(message: str, fix: str) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    tokens = org_tokens(
        app_client_id=APP,
        managed_identity_client_id=MI,
        credential=Refusing(ClientAuthenticationError(f"ClientAssertionCredential.get_token failed: {message}")),
    )
    with pytest.raises(OrgSignInError) as caught:
        tokens.tokens_for(ORG_B, TENANT_B).token()
    error = caught.value
    assert (
        isinstance(error, TransientError)
        and error.tenant_id == TENANT_B
        and error.code == message.split(":", maxsplit=1)[0]
    )
    assert f"{ORG_B}/.default in tenant {TENANT_B}" in error.detail and fix in error.detail


def test_an_unavailable_managed_identity_is_named() -> None:
    from azure.identity import CredentialUnavailableError

    tokens = OrgTokens(lambda _t: Refusing(CredentialUnavailableError("ManagedIdentityCredential unavailable")))
    with pytest.raises(OrgSignInError, match=r"managed identity \(AZURE_CLIENT_ID\) is not available"):
        tokens.tokens_for(ORG_A, TENANT_A).token()


def test_one_credential_can_serve_every_tenant() -> None:
    shared = RecordingCredential()
    tokens = org_tokens(app_client_id=None, managed_identity_client_id=None, credential=shared)
    assert tokens.credential_for(TENANT_A) is tokens.credential_for(TENANT_B) is shared


def test_a_tenant_that_has_not_consented_with_real_azure_identity(identity: Endpoints) -> None:
    _, entra = identity
    entra.refuse[TENANT_B] = (
        "unauthorized_client",
        f"AADSTS700016: Application with identifier '{APP}' was not found in the directory 'Fabrikam'.",
    )
    factory = federated_credential_factory(
        app_client_id=APP,
        assertion=ManagedIdentityAssertion(module.managed_identity_credential(MI)),
        authority=entra.authority,
        connection_verify=str(entra.ca_path),
    )
    tokens = org_tokens(app_client_id=APP, managed_identity_client_id=MI, credential_factory=factory)
    with pytest.raises(OrgSignInError, match=f"/{TENANT_B}/adminconsent\\?client_id={APP}") as caught:
        tokens.tokens_for(ORG_B, TENANT_B).token()
    assert caught.value.code == "AADSTS700016"
    assert tokens.tokens_for(ORG_A, TENANT_A).token() == f"dv-{TENANT_A}-2"  # one tenant's refusal is its own


def test_the_consent_page_is_in_the_cloud_of_the_authority() -> None:
    from azure.core.exceptions import ClientAuthenticationError

    tokens = org_tokens(
        app_client_id=APP,
        managed_identity_client_id=MI,
        authority="https://login.microsoftonline.us/",
        credential=Refusing(ClientAuthenticationError("AADSTS700016: Application not found in the directory")),
    )
    with pytest.raises(OrgSignInError) as caught:
        tokens.tokens_for(ORG_B, TENANT_B).token()
    assert f"open https://login.microsoftonline.us/{TENANT_B}/adminconsent?client_id={APP}" in caught.value.detail
