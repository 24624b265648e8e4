"""The real-time journeys send record and its send/report state machine, as pure functions (see state.py for the
outbound-marketing twin; both are driven by the same send-under-lease routine and reporting protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from shared.domain.due import add_items
from shared.domain.models import StatusKind
from shared.domain.rtj import DELIVERED, NOT_DELIVERED, OutboundPayload

AMBIGUOUS_DETAIL = "the provider may have the message; it is not sent again to avoid a duplicate"


class RtjStatus(StrEnum):
    CLAIMED = "claimed"  # record exists, provider not called yet
    SENDING = "sending"  # provider call in flight under a lease
    SENT = "sent"  # provider accepted: answered Sent
    NOT_SENT = "notsent"  # answered NotSent with a reason
    AMBIGUOUS = "ambiguous"  # the provider may have it: answered NotSent/Ambiguous, never resent


FINAL_RTJ_STATES = frozenset({RtjStatus.SENT, RtjStatus.NOT_SENT, RtjStatus.AMBIGUOUS})


@dataclass
class RtjState:
    """One real-time journeys send (keyed by the idempotency key); also routes its delivery reports."""

    key: str
    channel_definition_id: str
    request_id: str
    idempotency_id: str | None = None
    sender: str | None = None
    to_masked: str | None = None
    journey_id: str | None = None
    is_test_send: bool = False
    status: RtjStatus = RtjStatus.CLAIMED
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    lease_until: datetime | None = None
    due: list[str] = field(default_factory=list)  # "Delivered" / "NotDelivered:<reason>"
    recorded: list[str] = field(default_factory=list)
    flush_owner: str | None = None
    flush_until: datetime | None = None
    updated_at: datetime | None = None
    # Reconciliation (docs/reconciliation.md), as in the outbound record
    attempt_until: datetime | None = None
    first_attempt_until: datetime | None = None
    reconcile_attempts: int = 0
    reconcile_note: str | None = None
    org_id: str | None = None  # the registered org (MULTI_ORG, issue #15): its reports go there
    etag: str | None = None


def new_send(payload: OutboundPayload, to_masked: str, org_id: str | None = None) -> RtjState:
    """The record of a send not attempted yet (keyed by the payload's idempotency key)."""
    ids = (payload.key, payload.channel_definition_id, payload.request_id, payload.idempotency_id)
    test, journey = payload.is_test_send, payload.journey_id
    return RtjState(
        *ids, sender=payload.sender, to_masked=to_masked, journey_id=journey, is_test_send=test, org_id=org_id
    )


def not_sent(s: RtjState, reason: str, detail: str) -> RtjState | None:
    """Nothing can be sent (bad recipient, empty text): NotSent without calling the provider."""
    if s.status is not RtjStatus.CLAIMED:
        return None
    return replace(s, status=RtjStatus.NOT_SENT, lease_until=None, reason=reason, detail=detail[:300])


def claim(s: RtjState, *, provider: str, lease_until: datetime, phone_masked: str) -> RtjState | None:
    if s.status is not RtjStatus.CLAIMED:
        return None
    first = s.first_attempt_until or lease_until
    return replace(
        s,
        status=RtjStatus.SENDING,
        lease_until=lease_until,
        provider=provider,
        attempt_until=lease_until,
        first_attempt_until=first,
    )


def accepted(s: RtjState, *, provider: str, message_id: str) -> RtjState:
    message_id = s.provider_message_id or message_id
    return replace(s, status=RtjStatus.SENT, lease_until=None, provider=provider, provider_message_id=message_id)


def rejected(s: RtjState, *, code: str, detail: str) -> RtjState | None:
    if s.status is not RtjStatus.SENDING:
        return None
    return replace(s, status=RtjStatus.NOT_SENT, lease_until=None, reason=code, detail=detail[:300])


def released(s: RtjState, *, detail: str) -> RtjState | None:
    if s.status is not RtjStatus.SENDING:
        return None
    return replace(s, status=RtjStatus.CLAIMED, lease_until=None, first_attempt_until=None)


def ambiguous(s: RtjState, *, detail: str = AMBIGUOUS_DETAIL) -> RtjState | None:
    if s.status is not RtjStatus.SENDING:
        return None
    return replace(s, status=RtjStatus.AMBIGUOUS, lease_until=None, reason="Ambiguous", detail=detail[:300])


def reconcile_found(s: RtjState, *, provider: str, message_id: str, note: str) -> RtjState | None:
    """The provider holds our message: Sent with its id."""
    if s.status is not RtjStatus.AMBIGUOUS:
        return None
    found = accepted(s, provider=provider, message_id=message_id)
    return replace(found, reason=None, detail=None, reconcile_note=note)


def reconcile_claim(
    s: RtjState, *, provider: str, lease_until: datetime, phone_masked: str, note: str
) -> RtjState | None:
    """Provably absent (or a deduplicated replay): take the send lease again."""
    if s.status is not RtjStatus.AMBIGUOUS:
        return None
    unsent = replace(s, status=RtjStatus.CLAIMED, reason=None, detail=None, reconcile_note=note)
    return claim(unsent, provider=provider, lease_until=lease_until, phone_masked=phone_masked)


def reconcile_deferred(s: RtjState, *, note: str) -> RtjState | None:
    """Cannot tell now: still ambiguous, asked again later."""
    if s.status is not RtjStatus.AMBIGUOUS:
        return None
    return replace(s, reconcile_attempts=s.reconcile_attempts + 1, reconcile_note=note[:300])


def on_status(s: RtjState, *, message_id: str, kind: StatusKind, reason: str) -> RtjState | None:
    """A delivery report: one final notification per message (Delivered or NotDelivered); never backwards."""
    if kind in (StatusKind.DELIVERED, StatusKind.OPENED):
        item = DELIVERED
    elif kind is StatusKind.FAILED:
        item = f"{NOT_DELIVERED}:{reason}"
    else:
        return None
    if any(k.split(":")[0] in (DELIVERED, NOT_DELIVERED) for k in (*s.due, *s.recorded)):
        return None
    base = s if s.provider_message_id else replace(s, status=RtjStatus.SENT, provider_message_id=message_id)
    return add_items(base, item)
