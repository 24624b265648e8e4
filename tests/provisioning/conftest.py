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
