"""The outbox: records whose items are due, collected by the caller of the use cases and reported once.

A use case never reports by itself: it returns the records it left with something due (:class:`Handled`), the
trigger-level caller adds them here and calls :meth:`Outbox.report` once, so a batch of 100 activities costs one
``$batch`` round per due item instead of 100 requests. One message is a batch of one. Failures come back per
record key, so the caller settles exactly the messages (or callbacks) whose items could not be reported.
Model: nyaruka/courier's batch committer (a failed ``$batch`` operation is retried alone by the Dataverse client).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

from shared.app.config import Handled, Record
from shared.app.deps import Deps
from shared.app.reporting import FLUSH_LEASE, report_due_many
from shared.domain.due import Leased, take_lease
from shared.domain.errors import DataverseError, TransientError
from shared.domain.models import Interaction
from shared.domain.rtj import NOT_DELIVERED
from shared.domain.rtj_state import RtjState
from shared.domain.state import ActivityState
from shared.log import log_event

L = TypeVar("L", bound=Leased)


class Hold(Protocol):
    def __call__(self, record: L) -> L: ...


def no_hold(record: L) -> L:
    return record


class Outbox:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._records: dict[str, Record] = {}
        self.token = uuid.uuid4().hex  # this outbox's reporting lease

    def hold(self, record: L) -> L:
        """Take the reporting lease in the same write that makes items due (one write less per record); the record
        unchanged when another worker holds a live lease (reporting then waits for it, then defers)."""
        now = self._deps.clock.now()
        return take_lease(record, self.token, now, now + FLUSH_LEASE) or record

    def add(self, *records: Record) -> None:
        """Add records (the latest version of each key wins; reporting re-reads them under the lease anyway)."""
        for record in records:
            self._records[record.key] = record

    def collect(self, results: Iterable[Handled]) -> None:
        for result in results:
            self.add(*result.due)

    def __len__(self) -> int:
        return len(self._records)

    def report(self) -> dict[str, Exception]:
        """Report everything due; the errors by record key. The outbox is empty afterwards."""
        records, self._records = list(self._records.values()), {}
        activities = [r for r in records if isinstance(r, ActivityState) and r.due]
        sends = [r for r in records if isinstance(r, RtjState) and r.due]
        errors = self._report_activities(activities)
        errors.update(self._report_rtj(sends))
        return errors

    # --- outbound marketing: CreateInteraction, many per $batch ----------------------------------------------
    def _report_activities(self, records: Sequence[ActivityState]) -> dict[str, Exception]:
        if not records:
            return {}
        store = self._deps.records.activities

        def report_many(items: Sequence[tuple[ActivityState, str]]) -> list[Exception | None]:
            return self._deps.dataverse.create_interactions([(s.activity, Interaction.from_key(k)) for s, k in items])

        def reported(s: ActivityState, key: str) -> None:
            interaction = Interaction.from_key(key)
            log_event(
                "interaction.recorded",
                response_type=interaction.response_type.value,
                keyword=interaction.keyword,
                provider_message_id=s.provider_message_id,
                activity_row=s.row_id,
                activity_id=s.activity.activity_id,
                journey_id=s.activity.journey_id,
            )

        pairs = [(r, _mutate_for(store, r.key)) for r in records]
        _, errors = report_due_many(pairs, report_many, self._deps.clock, reported, token=self.token)
        return {r.key: e for r, e in zip(records, errors, strict=True) if e is not None}

    # --- real-time journeys: msdyn_D365ChannelsNotification, one per item ---------------------------------------
    def _report_rtj(self, records: Sequence[RtjState]) -> dict[str, Exception]:
        if not records or self._deps.rtj is None:
            return {}
        api = self._deps.rtj.dataverse
        store = self._deps.records.rtj

        def report_many(items: Sequence[tuple[RtjState, str]]) -> list[Exception | None]:
            results: list[Exception | None] = []
            for record, item in items:
                try:
                    api.channels_notification(notification(record, item, api.organization_id()))
                    results.append(None)
                except (TransientError, DataverseError) as error:
                    results.append(error)
            return results

        def reported(r: RtjState, item: str) -> None:
            status = item.split(":", maxsplit=1)[0]
            log_event("rtj.notified", status=status, provider_message_id=r.provider_message_id, request_id=r.request_id)

        pairs = [(r, _mutate_for(store, r.key)) for r in records]
        _, errors = report_due_many(pairs, report_many, self._deps.clock, reported, token=self.token)
        return {r.key: e for r, e in zip(records, errors, strict=True) if e is not None}


def _mutate_for(store: Any, key: str) -> Any:
    return lambda change: store.mutate(key, change)


def notification(record: RtjState, item: str, organization_id: str) -> dict[str, Any]:
    """The ``notificationPayLoad`` of one due item (``Delivered`` / ``NotDelivered:<reason>``)."""
    status, _, reason = item.partition(":")
    payload: dict[str, Any] = {
        "ChannelDefinitionId": record.channel_definition_id,
        "RequestId": record.request_id,
        "MessageId": record.provider_message_id,
        "From": record.sender,
        "OrganizationId": organization_id,
        "Status": status,
    }
    if status == NOT_DELIVERED:
        payload["Details"] = {
            "Reason": reason or "NotDelivered",
            "Message": "the provider reported the message as not delivered",
        }
    return payload
