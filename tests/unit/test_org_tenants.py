"""Multi-org pieces below the end-to-end tests (issue #15): the per-org deps cache, reply indexes per org, the log
scope, and how reconciliation orders find their org."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.adapters.org_table import MemoryOrgTable
from shared.app.deps import Deps, build_deps
from shared.app.reconcile_orders import ORG_PROPERTY, order_properties
from shared.app.routing import _org_of_activity
from shared.bootstrap_orgs import OrgTenants, RegisteredSenders
from shared.domain.errors import TransientError, UnknownOrganization
from shared.domain.reconcile import KIND_PROPERTY, RECONCILE_KIND, ReconcileOrder
from shared.domain.state import ActivityState
from shared.log import log_event, log_scope
from shared.orgs.model import OrgConfigError, OrgRecord
from shared.orgs.registry import OrgRegistry
from shared.ports import QueueMessage
from shared.records.indexes import Indexes
from shared.settings import load_settings
from tests.fakes import FakeClock, FakeDataverse, FakeProvider, config
from tests.unit.test_org_registry import MULTI, TENANT

ORG_A, ORG_B = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
ROW = "5f2a9c7e-3b1d-4e8a-9f60-2c7d8e9a1b34"


def deps(org: str | None = None, store: MemoryStore | None = None) -> Deps:
    store = store or MemoryStore()
    return build_deps(config(), FakeDataverse(), FakeProvider(), store, MemoryQueue(), FakeClock(), org_id=org)


def tenants(table: MemoryOrgTable, build: Any = None) -> tuple[OrgTenants, OrgRegistry, list[str]]:
    registry = OrgRegistry(table, load_settings(MULTI), cache_seconds=0)
    built: list[str] = []

    def make(record: OrgRecord) -> Deps:
        built.append(record.org_id)
        return deps(record.org_id)

    return OrgTenants(registry, deps(), build or make, RegisteredSenders(registry, 0)), registry, built


def record(org: str, **overrides: str) -> OrgRecord:
    return OrgRecord(org, "https://x.crm.dynamics.com", TENANT, overrides=overrides)


def test_deps_are_built_once_per_org_and_again_when_the_row_changes() -> None:
    table = MemoryOrgTable()
    orgs, registry, built = tenants(table)
    registry.add(record(ORG_A))
    first = orgs.deps_for(ORG_A.upper())
    assert orgs.deps_for(ORG_A) is first and first.org_id == ORG_A and built == [ORG_A]
    registry.update(ORG_A, lambda r: OrgRecord(**{**r.__dict__, "overrides": {"DEFAULT_COUNTRY_CODE": "44"}}))
    assert orgs.deps_for(ORG_A) is not first and built == [ORG_A, ORG_A]


def test_unknown_disabled_and_unusable_orgs() -> None:
    table = MemoryOrgTable()
    orgs, registry, _ = tenants(table)
    with pytest.raises(UnknownOrganization, match=f"organization {ORG_B} is not registered") as caught:
        orgs.deps_for(ORG_B)
    assert caught.value.reason == "unknown_organization"
    with pytest.raises(UnknownOrganization, match="is not an organization id"):
        orgs.deps_for("contoso")
    registry.add(OrgRecord(ORG_A, "https://x.crm.dynamics.com", TENANT, enabled=False))
    with pytest.raises(UnknownOrganization, match="is disabled"):
        orgs.deps_for(ORG_A)
    assert orgs.deps_for(ORG_A, new_work=False).org_id == ORG_A  # reports of work already accepted still go there

    def broken(record: OrgRecord) -> Deps:
        raise OrgConfigError(f"org {record.org_id}: KEY_VAULT_URI: required")

    unusable, registry_b, _ = tenants(MemoryOrgTable(), broken)
    registry_b.add(record(ORG_B))
    with pytest.raises(TransientError, match="KEY_VAULT_URI"):  # retried until the operator fixes it
        unusable.deps_for(ORG_B)


def test_org_for_number_is_the_one_org_configured_with_that_sender() -> None:
    table = MemoryOrgTable()
    orgs, registry, _ = tenants(table)
    registry.add(record(ORG_A, TWILIO_FROM="whatsapp:+15005550006"))
    registry.add(record(ORG_B, TWILIO_FROM="+15005550007"))
    registry.add(record("cccccccc-0000-4000-8000-00000000000c", TWILIO_FROM="+15005550007"))
    assert orgs.org_for_number("+15005550006") == ORG_A
    assert orgs.org_for_number("whatsapp:+15005550006") == ORG_A
    assert orgs.org_for_number("+15005550007") is None  # two orgs claim it: the record decides instead
    assert orgs.org_for_number("+15005550000") is None


def test_reply_indexes_are_per_org_and_the_shared_one_names_the_org() -> None:
    store = MemoryStore()
    at = datetime(2026, 12, 1, tzinfo=UTC)
    Indexes(store, ORG_A).index_phone("+447700900123", "row-a", at)
    Indexes(store, ORG_B).index_phone("+447700900123", "row-b", at.replace(hour=1))
    assert Indexes(store, ORG_A).find_by_phone("+447700900123") == ("row-a", at)
    assert Indexes(store, ORG_B).find_by_phone("+447700900123") == ("row-b", at.replace(hour=1))
    assert Indexes(store).org_by_phone("+447700900123") == ORG_B  # the most recent from any org
    Indexes(store).index_phone("+447700900999", "row-single", at)  # one org: unchanged, no org named
    assert Indexes(store).org_by_phone("+447700900999") is None
    Indexes(store, ORG_B).index_sender("+15005550007", "definition-b", "+447700900123")
    Indexes(store, ORG_A).index_sender("+15005550007", "definition-a", "+447700900456")  # one shared number
    assert Indexes(store, ORG_B).channel_for_sender("+15005550007") == ("definition-b", "+15005550007")
    assert Indexes(store, ORG_A).channel_for_sender("+15005550007") == ("definition-a", "+15005550007")
    assert Indexes(store).org_of_conversation("+15005550007", "+447700900123") == ORG_B
    assert Indexes(store).org_of_conversation("whatsapp:+15005550007", "+447700900456") == ORG_A
    Indexes(store, ORG_A, sender="+15005550006").index_phone("+447700900777", "row-c", at)
    assert Indexes(store).org_of_conversation("+15005550006", "+447700900777") == ORG_A


def test_log_lines_carry_the_scope(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="channel")
    with log_scope(org_id=ORG_A):
        log_event("probe.inside", activity_row="r1")
        with log_scope(org_id=None):
            log_event("probe.nested")
    log_event("probe.outside")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"probe.inside org_id={ORG_A} activity_row=r1", f"probe.nested org_id={ORG_A}", "probe.outside"]


def test_a_reconciliation_order_names_its_org() -> None:
    assert order_properties(deps()) == {KIND_PROPERTY: RECONCILE_KIND}
    assert order_properties(deps(ORG_B))[ORG_PROPERTY] == ORG_B
    home = deps()
    order = ReconcileOrder("outbound", ROW, datetime(2026, 12, 1, tzinfo=UTC)).encode()
    named = QueueMessage("activities", order, "m1", application_properties=order_properties(deps(ORG_B)))
    assert _org_of_activity(home, named) == ORG_B
    bare = QueueMessage("activities", order, "m2", application_properties={KIND_PROPERTY: RECONCILE_KIND})
    with pytest.raises(UnknownOrganization, match="names no organization"):
        _org_of_activity(home, bare)
    activity = ActivityState(activity=_activity(), org_id=ORG_A)
    home.records.activities.insert(activity)
    assert _org_of_activity(home, bare) == ORG_A  # an order written before it carried the org: the record's


def _activity() -> Any:
    from shared.domain.models import ActivityRef

    return ActivityRef(
        row_id=ROW,
        activity_id="c3f1a2b4-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        journey_id="j",
        iteration_id="i",
        contact_id="c",
        entity_type="t",
        entity_id="e",
    )


def test_the_deployment_app_takes_the_webhooks_of_registered_orgs_cloud_api_numbers() -> None:
    from shared.domain.models import InboundEvent
    from shared.providers.whatsapp_webhook import parse_webhook
    from tests.helpers import fixture_bytes

    body = fixture_bytes("whatsapp", "batch_two_entries.json")  # our number and another of the business account
    alone = parse_webhook(body, "106540352242922", frozenset())
    both = parse_webhook(body, "106540352242922", frozenset(), accepts={"999999999999999"}.__contains__)
    assert len(both) > len(alone)  # the registered org's number is ours too; nothing else is
    _, registry, _ = tenants(MemoryOrgTable())
    registry.add(record(ORG_B, WHATSAPP_PHONE_NUMBER_ID="999999999999999"))
    senders = RegisteredSenders(registry, 0)
    assert senders.accepts("999999999999999") and not senders.accepts("106540352242922")
    accounts = {e.account for e in both if isinstance(e, InboundEvent)}
    assert accounts <= {"106540352242922", "999999999999999"}
