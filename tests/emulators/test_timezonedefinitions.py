"""The emulator's timezonedefinitions (read-only system data) and the app's cached code lookup over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devtools.emulators.dataverse import DataverseEmulator
from shared.adapters.dataverse import DataverseClient
from shared.adapters.timezones import DataverseTimeZones
from shared.adapters.tokens import dataverse_tokens

H = {"Authorization": "Bearer tz", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}


@pytest.fixture
def org() -> Iterator[DataverseEmulator]:
    with DataverseEmulator(token="tz") as dv:
        yield dv


def get(dv: DataverseEmulator, params: dict[str, str]) -> requests.Response:
    return requests.get(f"{dv.api_url}/timezonedefinitions", params=params, headers=H, timeout=5)


def test_codes_and_standard_names_as_an_org_serves_them(org: DataverseEmulator) -> None:
    response = get(org, {"$select": "standardname", "$filter": "timezonecode eq 4 and retiredorder eq 0"})
    assert response.status_code == 200
    assert [r["standardname"] for r in response.json()["value"]] == ["Pacific Standard Time"]
    everything = get(org, {"$select": "timezonecode,standardname,userinterfacename,bias,daylightname,retiredorder"})
    rows = everything.json()["value"]
    assert {r["timezonecode"] for r in rows} >= {4, 35, 85, 110, 235}
    assert any(r["retiredorder"] == 1 for r in rows)  # a retired entry next to the current one


def test_there_is_no_iana_column_and_the_table_is_read_only(org: DataverseEmulator) -> None:
    unknown = get(org, {"$select": "timezonecode,ianazone"})
    assert unknown.status_code == 400 and "ianazone" in unknown.json()["error"]["message"]
    created = requests.post(
        f"{org.api_url}/timezonedefinitions", json={"standardname": "Mars", "timezonecode": 999}, headers=H, timeout=5
    )
    assert created.status_code == 400
    assert "does not support entities of type 'timezonedefinition'" in created.json()["error"]["message"]
    row_id = next(iter(org.rows("timezonedefinition")))
    patched = requests.patch(
        f"{org.api_url}/timezonedefinitions({row_id})", json={"standardname": "x"}, headers=H, timeout=5
    )
    assert patched.status_code == 400


def test_the_lookup_reads_the_table_once_and_skips_retired_entries(org: DataverseEmulator) -> None:
    client = DataverseClient(org.url, dataverse_tokens(org.url, static_token="tz"))
    names = DataverseTimeZones(client)
    assert names(4) == "Pacific Standard Time"
    assert names(35) == "Eastern Standard Time"  # the current entry, not the retired one
    assert names(235) == "Tokyo Standard Time"
    assert names(999) is None
    assert names.loads == 1
    reads = [op for op in org.operations if op.path.startswith("timezonedefinitions")]
    assert len(reads) == 1
