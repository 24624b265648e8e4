"""Tests for devtools.emulators.dataverse (loopback only)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.emulators.dataverse import DataverseEmulator

H = {
    "Authorization": "Bearer t0k3n",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Accept": "application/json",
}
JH = {**H, "Content-Type": "application/json"}
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ROOT = Path(__file__).resolve().parents[2]


def api(dv: DataverseEmulator, path: str) -> str:
    return f"{dv.api_url}/{path}"


def error_of(resp: requests.Response) -> dict[str, str]:
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return dict(body["error"])


def interaction(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ActivityId": "act-0001",
        "CustomerJourney": {
            "@odata.type": "Microsoft.Dynamics.CRM.msdyncrm_customerjourney",
            "msdyncrm_customerjourneyid": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01",
        },
        "CustomerJourneyIteration": {
            "@odata.type": "Microsoft.Dynamics.CRM.msdyncrm_customerjourneyiteration",
            "msdyncrm_customerjourneyiterationid": "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02",
        },
        "Contact": {
            "@odata.type": "Microsoft.Dynamics.CRM.contact",
            "contactid": "c0a80101-0000-4000-8000-000000000001",
        },
        "EntityType": "cr123_smsmessage",
        "EntityId": "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51",
        "ResponseType": "delivered",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


# --------------------------------------------------------------------------- auth & headers
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic dDBrM24=", "t0k3n"])
def test_auth_refused_with_challenge_and_empty_body(dv: DataverseEmulator, auth: str | None) -> None:
    headers = {k: v for k, v in H.items() if k != "Authorization"}
    if auth is not None:
        headers["Authorization"] = auth
    resp = requests.get(api(dv, "WhoAmI"), headers=headers, timeout=5)
    assert resp.status_code == 401
    assert resp.content == b""
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer authorization_uri=https://login.microsoftonline.com/")
    assert f"resource_id={dv.url}/" in challenge


def test_responses_carry_odata_headers(dv: DataverseEmulator) -> None:
    resp = requests.get(api(dv, "WhoAmI"), headers=H, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["OData-Version"] == "4.0"
    assert resp.headers["Content-Type"] == "application/json; odata.metadata=minimal"


@pytest.mark.parametrize("drop", ["OData-MaxVersion", "OData-Version"])
def test_missing_odata_header_is_400(dv: DataverseEmulator, drop: str) -> None:
    headers = {k: v for k, v in H.items() if k != drop}
    resp = requests.get(api(dv, "WhoAmI"), headers=headers, timeout=5)
    assert resp.status_code == 400
    assert drop in error_of(resp)["message"]


def test_accept_must_include_json(dv: DataverseEmulator) -> None:
    resp = requests.get(api(dv, "WhoAmI"), headers={**H, "Accept": "text/html"}, timeout=5)
    assert resp.status_code == 400
    assert "application/json" in error_of(resp)["message"]


def test_body_needs_json_content_type(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    resp = requests.post(
        api(dv, "contacts"), headers={**H, "Content-Type": "text/plain"}, data=b'{"firstname":"x"}', timeout=5
    )
    assert resp.status_code == 415
    assert error_of(resp)["code"] == "0x0"
    assert len(dv.rows("contact")) == 3


def test_request_log_redacts_authorization(dv: DataverseEmulator) -> None:
    requests.get(api(dv, "WhoAmI()"), headers=H, timeout=5)
    [rec] = dv.requests
    assert rec.method == "GET"
    assert rec.path == "/api/data/v9.2/WhoAmI()"
    assert rec.headers["Authorization"] == "<redacted>"
    assert "t0k3n" not in json.dumps(rec.headers)


# --------------------------------------------------------------------------- retrieve / select
def test_retrieve_selected_columns_with_key_and_etag(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    cid = demo["contact_ids"][0]
    resp = requests.get(api(dv, f"contacts({cid})"), params={"$select": "firstname,mobilephone"}, headers=H, timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"].endswith("$metadata#contacts(firstname,mobilephone)/$entity")
    assert body["@odata.etag"].startswith('W/"')
    assert {k for k in body if not k.startswith("@")} == {"firstname", "mobilephone", "contactid"}
    assert body["firstname"] == "Ada"
    assert body["contactid"] == cid


def test_lookup_is_returned_as_value_property(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    resp = requests.get(
        api(dv, f"msdyncrm_customerjourneycustomchannelactivities({demo['activity_id']})"),
        params={"$select": "msdyncrm_activityid,_msdyncrm_contact_value"},
        headers=H,
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.json()["_msdyncrm_contact_value"] == demo["contact_ids"][0]


def test_unknown_select_column_is_400(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    cid = demo["contact_ids"][0]
    resp = requests.get(api(dv, f"contacts({cid})"), params={"$select": "firstname,nosuch"}, headers=H, timeout=5)
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["code"] == "0x0"
    assert err["message"] == "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.contact'."


def test_add_columns_extends_selectable_set(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    dv.add_columns("contact", ["jobtitle"])
    cid = demo["contact_ids"][1]
    resp = requests.get(api(dv, f"contacts({cid})"), params={"$select": "jobtitle"}, headers=H, timeout=5)
    assert resp.status_code == 200
    assert resp.json()["jobtitle"] is None


def test_missing_row_is_404_does_not_exist(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    rid = str(uuid.uuid4())
    resp = requests.get(api(dv, f"contacts({rid})"), headers=H, timeout=5)
    assert resp.status_code == 404
    err = error_of(resp)
    assert err == {"code": "0x80040217", "message": f"contact With Id = {rid} Does Not Exist"}


def test_non_guid_key_is_400(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    resp = requests.get(api(dv, "contacts(not-a-guid)"), headers=H, timeout=5)
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "0x80060888"


def test_unknown_entity_set_is_404(dv: DataverseEmulator) -> None:
    resp = requests.get(api(dv, "nosuchthings"), headers=H, timeout=5)
    assert resp.status_code == 404
    assert error_of(resp) == {"code": "0x80060888", "message": "Resource not found for the segment 'nosuchthings'."}


def test_formatted_values_only_when_requested(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    cid = demo["contact_ids"][2]
    plain = requests.get(api(dv, f"contacts({cid})"), params={"$select": "donotsms"}, headers=H, timeout=5).json()
    assert "donotsms@OData.Community.Display.V1.FormattedValue" not in plain
    for prefer in (
        'odata.include-annotations="*"',
        'odata.include-annotations="OData.Community.Display.V1.FormattedValue"',
    ):
        resp = requests.get(
            api(dv, f"contacts({cid})"), params={"$select": "donotsms"}, headers={**H, "Prefer": prefer}, timeout=5
        )
        body = resp.json()
        assert body["donotsms@OData.Community.Display.V1.FormattedValue"] == "Do Not Allow"
        assert body["donotsms"] is True
        assert "odata.include-annotations" in resp.headers["Preference-Applied"]


# --------------------------------------------------------------------------- filters
def _ids(resp: requests.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["@odata.context"].startswith(f"{body['@odata.context'].split('$metadata')[0]}$metadata#contacts")
    return sorted(row["contactid"] for row in body["value"])


@pytest.mark.parametrize(
    "template",
    [
        "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['{a}','{b}'])",
        'Microsoft.Dynamics.CRM.In(PropertyName="contactid",PropertyValues=["{a}","{b}"])',
        "Microsoft.Dynamics.CRM.In(PropertyName='contactid', PropertyValues=['{A}', '{b}'])",
    ],
)
def test_in_filter(dv: DataverseEmulator, demo: dict[str, Any], template: str) -> None:
    a, b, _c = demo["contact_ids"]
    flt = template.format(a=a, b=b, A=a.upper())
    resp = requests.get(api(dv, "contacts"), params={"$select": "fullname", "$filter": flt}, headers=H, timeout=5)
    assert _ids(resp) == sorted([a, b])


def test_in_filter_alias_form(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    a, _b, c = demo["contact_ids"]
    params = {
        "$select": "fullname",
        "$filter": "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
        "@p1": "'contactid'",
        "@p2": json.dumps([a, c]),
    }
    resp = requests.get(api(dv, "contacts"), params=params, headers=H, timeout=5)
    assert _ids(resp) == sorted([a, c])


def test_in_filter_on_string_column_with_apostrophe(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    dv.add_row("contact", "c0a80101-0000-4000-8000-000000000009", {"lastname": "O'Hara"})
    flt = "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=[\"O'Hara\",'Turing'])"
    resp = requests.get(api(dv, "contacts"), params={"$filter": flt}, headers=H, timeout=5)
    assert _ids(resp) == sorted(["c0a80101-0000-4000-8000-000000000009", demo["contact_ids"][1]])


def test_in_filter_unknown_property_is_400(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    flt = "Microsoft.Dynamics.CRM.In(PropertyName='nosuch',PropertyValues=['x'])"
    resp = requests.get(api(dv, "contacts"), params={"$filter": flt}, headers=H, timeout=5)
    assert resp.status_code == 400
    assert "nosuch" in error_of(resp)["message"]


@pytest.mark.parametrize(
    ("flt", "expected_index"),
    [
        ("lastname eq 'Turing'", [1]),
        ("lastname eq 'turing'", [1]),
        ("donotsms eq true", [2]),
        ("donotsms eq false", [0, 1]),
        ("contactid eq c0a80101-0000-4000-8000-000000000003", [2]),
        ("donotsms eq false and lastname ne 'Turing'", [0]),
    ],
)
def test_simple_eq_filters(dv: DataverseEmulator, demo: dict[str, Any], flt: str, expected_index: list[int]) -> None:
    resp = requests.get(api(dv, "contacts"), params={"$filter": flt}, headers=H, timeout=5)
    assert _ids(resp) == sorted(demo["contact_ids"][i] for i in expected_index)


def test_url_longer_than_32k_is_rejected(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    guids = [str(uuid.uuid4()) for _ in range(900)]
    flt = "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[{}])".format(
        ",".join(f"'{g}'" for g in guids)
    )
    resp = requests.get(api(dv, "contacts"), params={"$filter": flt}, headers=H, timeout=5)
    assert resp.status_code == 414
    assert "32768" in error_of(resp)["message"]


# --------------------------------------------------------------------------- entity definitions
def test_entity_definitions_and_counter(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    url = api(dv, "EntityDefinitions(LogicalName='msdyncrm_customerjourneycustomchannelactivity')")
    for expected_count in (1, 2):
        resp = requests.get(url, params={"$select": "EntitySetName"}, headers=H, timeout=5)
        assert resp.status_code == 200
        body = resp.json()
        assert body["EntitySetName"] == "msdyncrm_customerjourneycustomchannelactivities"
        assert set(body) == {"@odata.context", "EntitySetName", "MetadataId"}
        assert uuid.UUID(body["MetadataId"])
        assert dv.entity_definition_requests == expected_count
    assert dv.entity_definition_lookups == ["msdyncrm_customerjourneycustomchannelactivity"] * 2


def test_entity_definitions_unknown_is_404(dv: DataverseEmulator) -> None:
    resp = requests.get(api(dv, "EntityDefinitions(LogicalName='nosuch')"), headers=H, timeout=5)
    assert resp.status_code == 404
    err = error_of(resp)
    assert err["code"] == "0x80060888"
    assert "nosuch" in err["message"]
    assert dv.entity_definition_requests == 1


# --------------------------------------------------------------------------- write operations
def test_patch_updates_row_and_etag(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    cid = demo["contact_ids"][0]
    before = requests.get(api(dv, f"contacts({cid})"), headers=H, timeout=5).json()["@odata.etag"]
    resp = requests.patch(api(dv, f"contacts({cid})"), headers=JH, json={"mobilephone": "+15550000000"}, timeout=5)
    assert resp.status_code == 204
    assert resp.headers["OData-EntityId"] == api(dv, f"contacts({cid})")
    row = dv.get_row("contact", cid)
    assert row is not None and row["mobilephone"] == "+15550000000"
    after = requests.get(api(dv, f"contacts({cid})"), headers=H, timeout=5).json()["@odata.etag"]
    assert after != before
    stale = requests.patch(
        api(dv, f"contacts({cid})"), headers={**JH, "If-Match": before}, json={"firstname": "X"}, timeout=5
    )
    assert stale.status_code == 412


def test_patch_missing_row_is_404_and_unknown_property_400(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    resp = requests.patch(api(dv, f"contacts({uuid.uuid4()})"), headers=JH, json={"firstname": "x"}, timeout=5)
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "0x80040217"
    cid = demo["contact_ids"][0]
    resp = requests.patch(api(dv, f"contacts({cid})"), headers=JH, json={"nosuch": 1}, timeout=5)
    assert resp.status_code == 400
    err = error_of(resp)  # Dataverse's own reader error (strict emulator): 0x80048d19 "Invalid property ..."
    assert err["code"] == "0x80048d19"
    assert "Invalid property 'nosuch' was found in entity 'Microsoft.Dynamics.CRM.contact'." in err["message"]


def test_post_creates_row(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    # lastname is ApplicationRequired in Microsoft's contact metadata: the strict emulator wants it on create
    resp = requests.post(api(dv, "contacts"), headers=JH, json={"firstname": "New", "lastname": "N"}, timeout=5)
    assert resp.status_code == 204
    entity_id = resp.headers["OData-EntityId"]
    new_id = entity_id.rsplit("(", 1)[1].rstrip(")")
    assert dv.get_row("contact", new_id) == {"firstname": "New", "lastname": "N"}
    resp = requests.post(
        api(dv, "contacts"),
        headers={**JH, "Prefer": "return=representation"},
        json={"firstname": "Rep", "lastname": "R"},
        timeout=5,
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["firstname"] == "Rep" and uuid.UUID(body["contactid"])


# --------------------------------------------------------------------------- interaction action
def post_action(
    dv: DataverseEmulator, body: Any, name: str = "msdyncrm_CustomChannelActivityCreateInteraction"
) -> requests.Response:
    return requests.post(api(dv, name), headers=JH, data=json.dumps(body), timeout=5)


def test_interaction_accepted(dv: DataverseEmulator) -> None:
    body = interaction(TriggerKeyword="YES")
    resp = post_action(dv, body)
    assert resp.status_code == 204
    assert resp.content == b""
    assert dv.interactions == [body]
    assert post_action(dv, interaction()).status_code == 204  # TriggerKeyword is optional
    assert len(dv.interactions) == 2


def test_interaction_unknown_parameter(dv: DataverseEmulator) -> None:
    resp = post_action(
        dv, interaction(Campaign={"@odata.type": "Microsoft.Dynamics.CRM.campaign", "campaignid": str(uuid.uuid4())})
    )
    assert resp.status_code == 400
    assert error_of(resp)["message"] == (
        "The parameter 'Campaign' in the request payload is not a valid parameter for the operation "
        "'msdyncrm_CustomChannelActivityCreateInteraction'."
    )
    assert dv.interactions == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"ResponseType": _DROP},
        {"Contact": _DROP},
        {"ActivityId": None},
        {"ActivityId": 17},
        {"Contact": {"contactid": "c0a80101-0000-4000-8000-000000000001"}},
        {"Contact": {"@odata.type": "Microsoft.Dynamics.CRM.contact"}},
        {"Contact": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": "not-a-guid"}},
        {
            "Contact": {
                "@odata.type": "Microsoft.Dynamics.CRM.account",
                "contactid": "c0a80101-0000-4000-8000-000000000001",
            }
        },
        {"Contact": "c0a80101-0000-4000-8000-000000000001"},
    ],
)
def test_interaction_invalid_payloads(dv: DataverseEmulator, overrides: dict[str, Any]) -> None:
    resp = post_action(dv, interaction(**overrides))
    assert resp.status_code == 400, resp.text
    assert error_of(resp)["code"].startswith("0x")
    assert dv.interactions == []


def test_interaction_campaign_signature() -> None:
    with DataverseEmulator(token="t0k3n", signature="campaign") as dv:
        body = interaction(
            CustomerJourney=_DROP,
            Campaign={"@odata.type": "Microsoft.Dynamics.CRM.campaign", "campaignid": str(uuid.uuid4())},
            WorkflowId="wf-1",
            TriggerKeyword="",
        )
        assert post_action(dv, body).status_code == 204
        assert dv.interactions == [body]
        resp = post_action(dv, interaction())
        assert resp.status_code == 400
        assert "'CustomerJourney'" in error_of(resp)["message"]


def test_metadata_lists_action_parameters(dv: DataverseEmulator) -> None:
    resp = requests.get(api(dv, "$metadata"), headers={**H, "Accept": "application/xml"}, timeout=5)
    assert resp.status_code == 200
    root = ET.fromstring(resp.content)  # noqa: S314 - our own loopback emulator
    actions = {a.get("Name"): a for a in root.iter(f"{EDM}Action")}
    params = {
        p.get("Name"): p.get("Type")
        for p in actions["msdyncrm_CustomChannelActivityCreateInteraction"].iter(f"{EDM}Parameter")
    }
    assert params == {
        "ActivityId": "Edm.String",
        "CustomerJourney": "mscrm.msdyncrm_customerjourney",
        "CustomerJourneyIteration": "mscrm.msdyncrm_customerjourneyiteration",
        "Contact": "mscrm.contact",
        "EntityType": "Edm.String",
        "EntityId": "Edm.String",
        "ResponseType": "Edm.String",
        "TriggerKeyword": "Edm.String",
    }
    notif = actions["msdyn_D365ChannelsNotification"]
    assert [p.get("Name") for p in notif.iter(f"{EDM}Parameter")] == ["notificationPayLoad"]
    assert notif.find(f"{EDM}ReturnType") is not None
    assert [p.get("Name") for p in actions["msdyn_D365ChannelsInbound"].iter(f"{EDM}Parameter")] == ["inboundPayLoad"]
    dv.set_signature("campaign")
    root = ET.fromstring(requests.get(api(dv, "$metadata"), headers=H, timeout=5).content)  # noqa: S314 - our own loopback emulator
    action = next(
        a for a in root.iter(f"{EDM}Action") if a.get("Name") == "msdyncrm_CustomChannelActivityCreateInteraction"
    )
    names = [p.get("Name") for p in action.iter(f"{EDM}Parameter")]
    assert "Campaign" in names and "WorkflowId" in names and "CustomerJourney" not in names


def test_whoami(dv: DataverseEmulator) -> None:
    for path in ("WhoAmI", "WhoAmI()"):
        body = requests.get(api(dv, path), headers=H, timeout=5).json()
        assert body["@odata.context"] == f"{dv.api_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
        assert body["UserId"] == dv.user_id
        assert body["BusinessUnitId"] == dv.business_unit_id
        assert body["OrganizationId"] == dv.organization_id


# --------------------------------------------------------------------------- channels notification / inbound
@pytest.mark.parametrize(
    ("action", "param", "store"),
    [
        ("msdyn_D365ChannelsNotification", "notificationPayLoad", "notifications"),
        ("msdyn_D365ChannelsInbound", "inboundPayLoad", "inbound"),
    ],
)
def test_channels_actions(dv: DataverseEmulator, action: str, param: str, store: str) -> None:
    inner = {"ChannelDefinitionId": str(uuid.uuid4()), "RequestId": "r1", "Status": "Delivered"}
    resp = post_action(dv, {param: json.dumps(inner)}, action)
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"].endswith(f"$metadata#Microsoft.Dynamics.CRM.{action}Response")
    assert isinstance(body["responseMessage"], str)
    assert getattr(dv, store) == [inner]

    wrong_case = param[0].upper() + param[1:]
    resp = post_action(dv, {wrong_case: json.dumps(inner)}, action)
    assert resp.status_code == 400
    assert error_of(resp)["message"] == (
        f"The parameter '{wrong_case}' in the request payload is not a valid parameter for the operation '{action}'."
    )
    for bad in (inner, json.dumps([1, 2]), "not json", None):
        assert post_action(dv, {param: bad}, action).status_code == 400
    assert post_action(dv, {}, action).status_code == 400
    assert getattr(dv, store) == [inner]


# --------------------------------------------------------------------------- service protection
def test_request_limit_429_with_retry_after(dv: DataverseEmulator) -> None:
    dv.limit(requests_per_window=3, window_seconds=0.5, retry_after=7)
    codes = [requests.get(api(dv, "WhoAmI"), headers=H, timeout=5) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert codes[3].headers["Retry-After"] == "7"
    err = error_of(codes[3])
    assert err["code"] == "0x80072322"
    assert "limit of 3" in err["message"]
    assert dv.throttled_count == 1
    assert dv.http_request_count == 4
    time.sleep(0.6)
    assert requests.get(api(dv, "WhoAmI"), headers=H, timeout=5).status_code == 200


def test_concurrency_limit(dv: DataverseEmulator) -> None:
    dv.limit(max_concurrent=2, retry_after=1)
    dv.latency = 0.3
    results: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        resp = requests.get(api(dv, "WhoAmI"), headers=H, timeout=10)
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throttled = [r for r in results if r.status_code == 429]
    assert dv.max_seen_concurrency >= 3
    assert throttled and all(error_of(r)["code"] == "0x80072326" for r in throttled)
    assert all(r.headers["Retry-After"] == "1" for r in throttled)
    assert dv.throttled_count == len(throttled)
    assert len(results) - len(throttled) >= 2


# --------------------------------------------------------------------------- $batch
def batch_body(parts: list[tuple[str, str, dict[str, Any] | None]], boundary: str, changeset: bool = False) -> bytes:
    lines: list[str] = []
    inner_boundary = "changeset_" + uuid.uuid4().hex
    if changeset:
        lines += [f"--{boundary}", f"Content-Type: multipart/mixed; boundary={inner_boundary}", ""]
    for i, (method, url, body) in enumerate(parts, 1):
        lines += [
            f"--{inner_boundary if changeset else boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
        ]
        if changeset:
            lines.append(f"Content-ID: {i}")
        lines += ["", f"{method} {url} HTTP/1.1"]
        if body is not None:
            lines += ["Content-Type: application/json; type=entry", "", json.dumps(body)]
        else:
            lines += [""]
        lines.append("")
    if changeset:
        lines += [f"--{inner_boundary}--", ""]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode()


def parse_batch_response(resp: requests.Response) -> list[int]:
    ctype = resp.headers["Content-Type"]
    assert ctype.startswith("multipart/mixed; boundary=batchresponse_")
    return [int(line.split()[1]) for line in resp.text.splitlines() if line.startswith("HTTP/1.1 ")]


def _patches(dv: DataverseEmulator, demo: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    a, _b, c = demo["contact_ids"]
    return [
        ("PATCH", f"{dv.api_url}/contacts({a})", {"lastname": "B1"}),
        ("PATCH", f"/api/data/v9.2/contacts({uuid.uuid4()})", {"lastname": "B2"}),
        ("PATCH", f"/api/data/v9.2/contacts({c})", {"lastname": "B3"}),
    ]


def test_batch_stops_at_first_error(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    boundary = "batch_" + uuid.uuid4().hex
    resp = requests.post(
        api(dv, "$batch"),
        headers={**H, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        data=batch_body(_patches(dv, demo), boundary),
        timeout=5,
    )
    assert resp.status_code == 200
    assert parse_batch_response(resp) == [204, 404]
    assert "Does Not Exist" in resp.text
    assert dv.get_row("contact", demo["contact_ids"][0])["lastname"] == "B1"  # type: ignore[index]
    assert dv.get_row("contact", demo["contact_ids"][2])["lastname"] == "Hopper"  # type: ignore[index]
    assert dv.http_request_count == 1
    assert dv.batch_count == 1
    assert dv.operation_count == 2


def test_batch_continue_on_error(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    boundary = "batch_" + uuid.uuid4().hex
    resp = requests.post(
        api(dv, "$batch"),
        headers={**H, "Content-Type": f'multipart/mixed; boundary="{boundary}"', "Prefer": "odata.continue-on-error"},
        data=batch_body(_patches(dv, demo), boundary),
        timeout=5,
    )
    assert resp.status_code == 200
    assert parse_batch_response(resp) == [204, 404, 204]
    assert resp.headers["Preference-Applied"] == "odata.continue-on-error"
    assert dv.get_row("contact", demo["contact_ids"][2])["lastname"] == "B3"  # type: ignore[index]
    assert dv.operation_count == 3
    assert dv.http_request_count == 1


def test_batch_actions_and_changeset_rollback(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    boundary = "batch_" + uuid.uuid4().hex
    good = ("POST", "/api/data/v9.2/msdyncrm_CustomChannelActivityCreateInteraction", interaction())
    bad = ("POST", "/api/data/v9.2/msdyncrm_CustomChannelActivityCreateInteraction", interaction(Bogus="x"))
    resp = requests.post(
        api(dv, "$batch"),
        headers={**H, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        data=batch_body([good, good, bad], boundary, changeset=True),
        timeout=5,
    )
    assert resp.status_code == 200
    assert parse_batch_response(resp) == [400]
    assert dv.interactions == []  # the change set was rolled back
    resp = requests.post(
        api(dv, "$batch"),
        headers={**H, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        data=batch_body([good, good], boundary),
        timeout=5,
    )
    assert parse_batch_response(resp) == [204, 204]
    assert len(dv.interactions) == 2


def test_batch_rejects_more_than_1000_operations(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    boundary = "batch_x"
    parts: list[tuple[str, str, dict[str, Any] | None]] = [("GET", "/api/data/v9.2/WhoAmI", None)] * 1001
    resp = requests.post(
        api(dv, "$batch"),
        headers={**H, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        data=batch_body(parts, boundary),
        timeout=10,
    )
    assert resp.status_code == 400
    assert "1000" in error_of(resp)["message"]
    assert dv.operation_count == 0


# --------------------------------------------------------------------------- faults
def test_inject_status_then_recover(dv: DataverseEmulator) -> None:
    dv.inject_error("GET", r"WhoAmI", status=503, code="0x80040216", message="Service unavailable", times=2)
    codes = [requests.get(api(dv, "WhoAmI"), headers=H, timeout=5).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_inject_drop_connection(dv: DataverseEmulator) -> None:
    dv.inject("POST", r"msdyncrm_CustomChannelActivityCreateInteraction", status=0)
    with pytest.raises(requests.ConnectionError):
        post_action(dv, interaction())
    assert dv.interactions == []
    assert post_action(dv, interaction()).status_code == 204


def test_inject_delay_and_latency(dv: DataverseEmulator) -> None:
    dv.inject("GET", r"WhoAmI", status=200, body={"ok": True}, delay=0.3)
    start = time.monotonic()
    resp = requests.get(api(dv, "WhoAmI"), headers=H, timeout=5)
    assert resp.json() == {"ok": True}
    assert time.monotonic() - start >= 0.3
    with pytest.raises(requests.Timeout):
        dv.latency = 0.5
        requests.get(api(dv, "WhoAmI"), headers=H, timeout=0.2)


def test_reset_clears_logs_keeps_data(dv: DataverseEmulator, demo: dict[str, Any]) -> None:
    post_action(dv, interaction())
    dv.reset()
    assert dv.requests == [] and dv.interactions == [] and dv.http_request_count == 0
    assert len(dv.rows("contact")) == 3


def test_cli_serves_seeded_demo() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulators.dataverse", "--port", "0", "--seed", "demo"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        seed = json.loads(proc.stdout.readline())["seed"]
        assert url.startswith("http://127.0.0.1:")
        headers = {**H, "Authorization": "Bearer dev-token"}
        resp = requests.get(f"{url}/api/data/v9.2/contacts", headers=headers, timeout=5)
        assert sorted(r["contactid"] for r in resp.json()["value"]) == sorted(seed["contact_ids"])
        msg = requests.get(
            f"{url}/api/data/v9.2/{seed['message_entity_set']}({seed['message_id']})", headers=headers, timeout=5
        )
        assert seed["message_body_column"] in msg.json()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
