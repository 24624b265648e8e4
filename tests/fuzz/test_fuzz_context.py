"""Fuzzing the RemoteExecutionContext parser and the activity trigger's service entry point.

Properties: the parser returns a parsed message or raises PoisonMessage, nothing else; every id it returns is a
canonical GUID (ids are interpolated into Web API URLs); the service settles every message (poison / retry /
processed) without raising.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.context import parse_activity_message
from shared.domain.errors import PoisonMessage
from shared.ports import QueueMessage
from tests.fuzz.conftest import FUZZ, build_service
from tests.helpers import fixture_bytes

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE_CONTEXT: dict[str, Any] = json.loads(fixture_bytes("dataverse", "activity_create.json"))

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            str(uuid.uuid4()),
            "{" + str(uuid.uuid4()).upper() + "}",
            "/Date(1506409448000-0700)/",
            "/Date(99999999999999999999)/",
            "/Date(-99999999999999999999)/",
            "msdyncrm_customerjourneycustomchannelactivity",
            "Create",
            "cr123_smsmessage",
            "' or 1 eq 1 or '",
            "x') or contains(fullname,'a",
        ]
    )
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
PATHS = [
    ("MessageName",),
    ("PrimaryEntityName",),
    ("PrimaryEntityId",),
    ("InputParameters",),
    ("InputParameters", 0, "value"),
    ("InputParameters", 0, "value", "Attributes"),
    ("InputParameters", 0, "value", "LogicalName"),
    ("SharedVariables",),
    ("PostEntityImages",),
    ("OperationCreatedOn",),
    ("CorrelationId",),
]


def _mutate(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    target = document
    for step in path[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return document
    with contextlib.suppress(KeyError, IndexError, TypeError):
        target[path[-1]] = value
    return document


@st.composite
def contexts(draw: st.DrawFn) -> bytes:
    document = json.loads(json.dumps(BASE_CONTEXT))
    attributes = document["InputParameters"][0]["value"]["Attributes"]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()) and attributes:
            index = draw(st.integers(0, len(attributes) - 1))
            attributes[index]["value"] = draw(json_values)
        else:
            _mutate(document, draw(st.sampled_from(PATHS)), draw(json_values))
    return json.dumps(document).encode()


raw_bodies = st.binary(max_size=2048) | st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass"))
content_types = st.sampled_from(
    [None, "application/json", "application/xml", "application/msbin1", "text/plain", "application/json; x=1"]
)
properties = st.dictionaries(
    st.sampled_from(
        [
            "channel-attempt",
            "MessageMaxSizeExceeded",
            "http://schemas.microsoft.com/xrm/2011/Claims/RequestName",
            "http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName",
            "other",
        ]
    ),
    json_leaf | st.floats(),
    max_size=3,
)


def _check_parse(body: bytes, content_type: str | None, props: dict[str, Any]) -> None:
    try:
        parsed = parse_activity_message(body, content_type, props)
    except PoisonMessage as poison:
        assert poison.reason and poison.detail
        return
    assert CANONICAL.match(parsed.row_id)
    if parsed.activity is not None:
        for value in (parsed.activity.contact_id, parsed.activity.entity_id, parsed.activity.journey_id):
            assert CANONICAL.match(value), value
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,127}", parsed.activity.entity_type)


@FUZZ
@given(body=contexts(), content_type=content_types, props=properties)
def test_parser_structured(body: bytes, content_type: str | None, props: dict[str, Any]) -> None:
    _check_parse(body, content_type, props)


@FUZZ
@given(body=raw_bodies, content_type=content_types, props=properties)
def test_parser_raw_bytes(body: bytes, content_type: str | None, props: dict[str, Any]) -> None:
    _check_parse(body, content_type, props)


SERVICE = build_service()


@FUZZ
@given(body=contexts() | raw_bodies, content_type=content_types, props=properties)
def test_activity_trigger_settles_every_message(body: bytes, content_type: str | None, props: dict[str, Any]) -> None:
    outcome = SERVICE.handle_activity_message(QueueMessage("activities", body, "fuzz", content_type, 1, props))
    assert outcome.result


@FUZZ
@given(body=raw_bodies | json_values.map(lambda v: json.dumps(v).encode()))
def test_queued_callback_trigger_settles_every_message(body: bytes) -> None:
    outcome = SERVICE.handle_queued_callback(QueueMessage("callbacks", body, "fuzz", "application/json", 1, {}))
    assert outcome.result
