"""Fixtures: a Dataverse emulator serving the customization API, with an outbound-marketing org's basics."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cli import provision
from devtools.emulators.dataverse import DataverseEmulator
from shared.adapters.dataverse import DataverseClient
from shared.adapters.tokens import StaticToken

TOKEN = "provision-test-token"
SAS_KEY = "c2VjcmV0LXNhcy1rZXktdmFsdWU9PQ=="
BASE_ARGS = [
    "--prefix",
    "cr123",
    "--solution",
    "ContosoSmsChannel",
    "--namespace",
    "sb-contoso",
    "--queue",
    "activities",
    "--sas-key-name",
    "dataverse-send",
]


@pytest.fixture
def org() -> Iterator[DataverseEmulator]:
    with DataverseEmulator(token=TOKEN) as dv:
        dv.add_entity("contact", "contacts", "contactid")
        dv.add_columns("contact", ["firstname", "mobilephone", "donotphone"])
        dv.add_entity(
            "msdyncrm_customerjourneycustomchannelactivity",
            "msdyncrm_customerjourneycustomchannelactivities",
            "msdyncrm_customerjourneycustomchannelactivityid",
        )
        dv.enable_customization()
        yield dv


RunResult = tuple[int, str]


@pytest.fixture
def run(org: DataverseEmulator) -> Callable[..., RunResult]:
    def _run(*extra: str, base: list[str] | None = None) -> RunResult:
        out = io.StringIO()
        client: Any = DataverseClient(org.url, StaticToken(TOKEN), max_retries=0)
        code = provision.main(
            [*(BASE_ARGS if base is None else base), "--dataverse-url", org.url, *extra], out=out, client=client
        )
        return code, out.getvalue()

    return _run


# --- real-time journeys --------------------------------------------------------------------------------------
PLUGIN_TYPE_ID = "5c3e1f0a-7b2d-4e6f-9a8b-1c2d3e4f5a6b"
RELAY_URL = "https://func-contoso.azurewebsites.net/api/rtj/outbound"
TOKEN_SCOPE = "api://0d3c2b1a-9f8e-4d7c-8b6a-5f4e3d2c1b0a/.default"
RELAY_CLIENT_ID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
RELAY_TENANT_ID = "11112222-3333-4444-8555-666677778888"
ENTRA = [
    "--relay-auth",
    "entra",
    "--relay-token-scope",
    TOKEN_SCOPE,
    "--relay-identity-client-id",
    RELAY_CLIENT_ID,
    "--relay-identity-tenant-id",
    RELAY_TENANT_ID,
]
RTJ_ARGS = ["--prefix", "cr123", "--solution", "ContosoSmsChannel", "--rtj-only"]


@pytest.fixture
def rtj_org(org: DataverseEmulator) -> DataverseEmulator:
    """An org with real-time journeys installed (base channel tables, the two roles) and the relay plug-in."""
    org.enable_rtj()
    org.add_plugin_type("ChannelRelay.OutboundRelayPlugin", PLUGIN_TYPE_ID)
    return org
