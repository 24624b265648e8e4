"""The small interfaces the service layer depends on. Adapters implement them; tests can swap them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.domain.models import (
    ActivityRef,
    InboundHttpRequest,
    Interaction,
    ProviderCallback,
    SendRequest,
    SendResult,
)
from shared.domain.reconcile import Lookup, SentQuery


class Dataverse(Protocol):
    """What the service layer needs from Dataverse (implemented by shared.adapters.dataverse.DataverseClient)."""

    def entity_set_name(self, logical_name: str) -> str: ...

    def get_row(
        self, logical_name: str, row_id: str, columns: list[str], *, formatted: bool = False, cache: bool = False
    ) -> dict[str, Any]: ...

    def get_rows_in(
        self, logical_name: str, key_column: str, ids: Sequence[str], columns: list[str], *, formatted: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Many rows by id (``Microsoft.Dynamics.CRM.In``), keyed by lower-case id."""
        ...

    def update_row(self, logical_name: str, row_id: str, values: Mapping[str, Any]) -> None: ...

    def create_interaction(self, activity: ActivityRef, interaction: Interaction) -> None: ...

    def create_interactions(self, calls: Sequence[tuple[ActivityRef, Interaction]]) -> list[Exception | None]:
        """Many interactions (``$batch``); per call None or the error that stopped it."""
        ...


class Provider(Protocol):
    """One SMS/WhatsApp provider: sends, and understands its own callbacks."""

    name: str

    def send(self, request: SendRequest) -> SendResult:
        """Raise ``SendRejected`` (permanent) or ``SendFailedTransient`` (retry / ambiguous)."""
        ...

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        """Authenticate then parse. Raise ``CallbackRejected`` before reading anything unauthenticated."""
        ...

    # Reconciliation of ambiguous sends (docs/reconciliation.md). ``replay_window``: how long the provider
    # deduplicates a resend with the same repeatability key (None: it does not).
    replay_window: timedelta | None

    def lookup(self, query: SentQuery) -> Lookup:
        """Does the provider hold the message of this ambiguous send? Never raises for provider trouble: that is
        ``unknown`` (asked again later)."""
        ...


class Conflict(Exception):
    """The record exists already (insert) or changed since it was read (replace with an ETag)."""


class KeyValueStore(Protocol):
    """A tiny entity store with optimistic concurrency (Azure Table Storage semantics)."""

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None: ...

    def insert(self, partition: str, row: str, values: Mapping[str, Any]) -> str: ...

    def replace(self, partition: str, row: str, values: Mapping[str, Any], etag: str) -> str: ...

    def upsert(self, partition: str, row: str, values: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class QueueMessage:
    """A received queue message, framework-neutral."""

    queue: str
    body: bytes
    message_id: str
    content_type: str | None = None
    delivery_count: int = 1
    application_properties: Mapping[str, Any] = field(default_factory=dict)
    enqueued_time: datetime | None = None


class QueuePublisher(Protocol):
    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class ChannelsApi(Protocol):
    """What the real-time journeys use cases need from Dataverse (implemented by DataverseClient)."""

    def organization_id(self) -> str: ...

    def channels_notification(self, payload: Mapping[str, Any]) -> None: ...

    def channels_inbound(self, payload: Mapping[str, Any]) -> None: ...
