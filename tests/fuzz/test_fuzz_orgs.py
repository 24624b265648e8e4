"""Fuzzing multi-org routing (issue #15): whatever ``OrganizationId``, ``?org=`` or ``X-Organization-Id`` arrives,
the router settles or answers it and never raises; a message from an org that is not registered is poisoned as
``unknown_organization`` and nothing is sent."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.adapters.org_table import MemoryOrgTable
from shared.app.deps import Deps, build_deps
from shared.bootstrap_orgs import OrgTenants, RegisteredSenders
from shared.domain.models import InboundHttpRequest
from shared.orgs.model import OrgRecord
from shared.orgs.registry import OrgRegistry
from shared.ports import QueueMessage
from shared.service import ChannelService
from shared.settings import load_settings
from tests.fakes import FakeClock, FakeDataverse, FakeProvider, config
from tests.fuzz.conftest import FUZZ
from tests.fuzz.test_fuzz_context import BASE_CONTEXT, json_values
from tests.unit.test_org_registry import MULTI

REGISTERED = "4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b"  # the fixture's OrganizationId
PROVIDER = FakeProvider()


def _service() -> tuple[ChannelService, MemoryQueue]:
    store, queue, clock = MemoryStore(), MemoryQueue(), FakeClock()
    registry = OrgRegistry(MemoryOrgTable(), load_settings(MULTI))
    registry.add(OrgRecord(REGISTERED, "https://x.crm.dynamics.com", "72f988bf-86f1-41af-91ab-2d7cd011db47"))

    def build(record: OrgRecord) -> Deps:
        return build_deps(config(), FakeDataverse(), PROVIDER, store, queue, clock, org_id=record.org_id)

    home = build_deps(config(), FakeDataverse(), PROVIDER, store, queue, clock)
    return ChannelService(home, OrgTenants(registry, home, build, RegisteredSenders(registry, 60))), queue


SERVICE, QUEUE = _service()
org_values = json_values | st.sampled_from(
    [REGISTERED, REGISTERED.upper(), "{" + REGISTERED + "}", "00000000-0000-0000-0000-000000000000", "", " "]
)


@FUZZ
@given(org=org_values)
def test_any_organization_id_is_settled_and_unknown_ones_send_nothing(org: Any) -> None:
    document = json.loads(json.dumps(BASE_CONTEXT))
    document["OrganizationId"] = org
    sent_before, poisoned_before = len(PROVIDER.sent), len(QUEUE.on("activities-poison"))
    outcome = SERVICE.handle_activity_message(QueueMessage("activities", json.dumps(document).encode(), "fuzz"))
    assert outcome.result
    if outcome.result == "poisoned":
        assert len(PROVIDER.sent) == sent_before
        poisoned = QUEUE.on("activities-poison")[poisoned_before:]
        assert poisoned and (poisoned[-1].application_properties or {})["DeadLetterReason"]


@FUZZ
@given(org=st.text(max_size=80), body=st.binary(max_size=256))
def test_any_org_query_or_header_is_answered(org: str, body: bytes) -> None:
    request = InboundHttpRequest(
        method="POST",
        path="/api/callbacks/fake",
        query={"org": org},
        headers={"x-organization-id": org, "content-type": "application/json"},
        body=body,
    )
    assert 200 <= SERVICE.handle_callback("fake", request).status < 600
    assert 200 <= SERVICE.handle_rtj_outbound(request).status < 600
