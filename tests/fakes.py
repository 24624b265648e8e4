"""In-memory fakes for unit tests of the service layer (integration tests use the HTTP emulators instead)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.app.config import ChannelConfig
from shared.app.deps import build_deps
from shared.domain import reconcile
from shared.domain.errors import NotFound, TransientError
from shared.domain.models import (
    ActivityRef,
    HttpReply,
    InboundHttpRequest,
    Interaction,
    ProviderCallback,
    SendRequest,
    SendResult,
)
from shared.domain.reconcile import Lookup, SentQuery
from shared.domain.state import ActivityState
from shared.records.indexes import Indexes
from shared.records.store import RecordStore
from shared.service import ChannelService
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@dataclass
class FakeDataverse:
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    interactions: list[tuple[ActivityRef, Interaction]] = field(default_factory=list)
    updates: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail_interactions: int = 0  # next N create_interaction calls raise TransientError
    reads: int = 0

    def entity_set_name(self, logical_name: str) -> str:
        return logical_name + "s"

    def get_row(
        self, logical_name: str, row_id: str, columns: list[str], *, formatted: bool = False, cache: bool = False
    ) -> dict[str, Any]:
        self.reads += 1
        row = self.rows.get((logical_name, row_id))
        if row is None:
            raise NotFound(404, "0x80040217", f"{logical_name} With Id = {row_id} Does Not Exist", "read")
        return {c: row.get(c) for c in columns} | {k: v for k, v in row.items() if "@" in k}

    def get_rows_in(
        self, logical_name: str, key_column: str, ids: Sequence[str], columns: list[str], *, formatted: bool = False
    ) -> dict[str, dict[str, Any]]:
        self.reads += 1
        found = {}
        for row_id in ids:
            row = self.rows.get((logical_name, row_id))
            if row is not None:
                found[row_id.lower()] = {c: row.get(c) for c in columns} | {k: v for k, v in row.items() if "@" in k}
        return found

    def update_row(self, logical_name: str, row_id: str, values: Mapping[str, Any]) -> None:
        self.updates.append((logical_name, row_id, dict(values)))
        self.rows.setdefault((logical_name, row_id), {}).update(values)

    def create_interaction(self, activity: ActivityRef, interaction: Interaction) -> None:
        if self.fail_interactions:
            self.fail_interactions -= 1
            raise TransientError("HTTP 503 from Dataverse", retry_after=5)
        self.interactions.append((activity, interaction))

    def create_interactions(self, calls: Sequence[tuple[ActivityRef, Interaction]]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for activity, interaction in calls:
            try:
                self.create_interaction(activity, interaction)
                results.append(None)
            except TransientError as error:
                results.append(error)
        return results

    def response_types(self) -> list[str]:
        return [i.key for _, i in self.interactions]


@dataclass
class FakeProvider:
    name: str = "fake"
    sent: list[SendRequest] = field(default_factory=list)
    outcomes: list[Exception] = field(default_factory=list)  # raised in order before succeeding
    ids: Any = field(default_factory=lambda: (f"FK{n:06d}" for n in itertools.count(1)))
    callback_events: list[Any] = field(default_factory=list)
    replay_window: timedelta | None = None
    lookups: list[SentQuery] = field(default_factory=list)
    lookup_results: list[Lookup] = field(default_factory=list)  # answered in order, then the default below
    accepted_ids: list[str] = field(default_factory=list)

    def send(self, request: SendRequest) -> SendResult:
        if self.outcomes:
            raise self.outcomes.pop(0)
        self.sent.append(request)
        message_id = next(self.ids)
        self.accepted_ids.append(message_id)
        return SendResult(message_id, "queued")

    def lookup(self, query: SentQuery) -> Lookup:
        """Scripted answers first; then what it really holds: a message to that number with that text, or none."""
        self.lookups.append(query)
        if self.lookup_results:
            return self.lookup_results.pop(0)
        for request, message_id in zip(self.sent, self.accepted_ids, strict=True):
            if request.to == query.to and request.body == query.body and not query.attributed(message_id):
                return reconcile.found(message_id)
        return reconcile.absent("the fake holds no such message")

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        return ProviderCallback(list(self.callback_events), HttpReply(200, b"ok"))


def config(**overrides: Any) -> ChannelConfig:
    values: dict[str, Any] = dict(
        provider_name="fake",
        callback_url="https://app.example/api/callbacks/fake",
        message_body_column="cr123_body",
        contact_phone_column="mobilephone",
        compliance_column="donotphone",
        default_country_code=None,
        reply_window=timedelta(days=7),
        opt_out_words=frozenset({"stop", "unsubscribe", "cancel", "end", "quit", "stopall"}),
        activity_queue="activities",
        callback_queue="callbacks",
        poison_queue="activities-poison",
        max_attempts=3,
        retry_base_seconds=30.0,
        send_lease=timedelta(minutes=2),
        callback_processing="queued",  # the settings default: tests run the path production runs
    )
    values.update(overrides)
    return ChannelConfig(**values)


@dataclass
class World:
    service: ChannelService
    dataverse: FakeDataverse
    provider: FakeProvider
    store: MemoryStore
    queue: MemoryQueue
    clock: FakeClock

    @property
    def repo(self) -> RecordStore[ActivityState]:
        return self.service.deps.records.activities

    @property
    def indexes(self) -> Indexes:
        return self.service.deps.records.indexes


def world(body: str = "Hi {{contact.firstname}}", phone: str | None = "+447700900123", **cfg: Any) -> World:
    dataverse = FakeDataverse()
    dataverse.rows[(MESSAGE_TABLE, MESSAGE_ID)] = {"cr123_body": body}
    dataverse.rows[("contact", CONTACT_ID)] = {"mobilephone": phone, "donotphone": False, "firstname": "Avery"}
    provider = FakeProvider()
    store, queue, clock = MemoryStore(), MemoryQueue(), FakeClock()
    service = ChannelService(build_deps(config(**cfg), dataverse, provider, store, queue, clock))
    return World(service, dataverse, provider, store, queue, clock)
