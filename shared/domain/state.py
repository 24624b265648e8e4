"""The durable per-activity state record and its pure transition rules.

One record per Custom Channel Activity row (keyed by the row id) makes processing exactly-once:
``send_status`` says whether the provider was called, and ``due``/``recorded`` say which interactions must still
be / have been reported to Dataverse. Interactions are added to ``due`` first and moved to ``recorded`` after
Dataverse accepted them, so a crash never loses one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.domain.due import add_items
from shared.domain.models import ActivityRef, Interaction, ResponseType, StatusKind


class SendStatus(StrEnum):
    CLAIMED = "claimed"  # record exists, provider not called yet (or a retry-safe failure released it)
    SENDING = "sending"  # provider call in flight under a lease
    SENT = "sent"  # provider accepted; provider_message_id known
    FAILED = "failed"  # nothing sent (unusable phone, provider rejected)
    SUPPRESSED = "suppressed"  # compliance column was true at send time: nothing sent, nothing recorded
    AMBIGUOUS = "ambiguous"  # the provider may or may not have the message: never resent (see docs/design.md)


FINAL_SEND_STATES = frozenset({SendStatus.SENT, SendStatus.FAILED, SendStatus.SUPPRESSED, SendStatus.AMBIGUOUS})


@dataclass
class ActivityState:
    activity: ActivityRef
    send_status: SendStatus = SendStatus.CLAIMED
    contract: str = "outbound"
    provider: str | None = None
    provider_message_id: str | None = None
    phone_masked: str | None = None
    lease_until: datetime | None = None
    send_attempts: int = 0
    due: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    last_error: str | None = None
    updated_at: datetime | None = None
    flush_owner: str | None = None  # the worker currently reporting ``due`` interactions (a lease)
    flush_until: datetime | None = None
    etag: str | None = None

    @property
    def row_id(self) -> str:
        return self.activity.row_id

    def seen(self, key: str) -> bool:
        return key in self.due or key in self.recorded

    def due_interactions(self) -> list[Interaction]:
        return [Interaction.from_key(k) for k in self.due]


def add_due(state: ActivityState, *interactions: Interaction) -> ActivityState:
    """Queue interactions not yet seen (each response type at most once per activity)."""
    return add_items(state, *(i.key for i in interactions))


_SENT = Interaction(ResponseType.SENT)
_DELIVERED = Interaction(ResponseType.DELIVERED)
_OPENED = Interaction(ResponseType.OPENED)
_FAILED = Interaction(ResponseType.FAILED)


def interactions_for_status(state: ActivityState, kind: StatusKind) -> list[Interaction]:
    """Which interactions a delivery status adds, given what was already seen. Statuses never go backwards.

    - delivered implies sent; opened (WhatsApp read) implies delivered; both are recorded in order;
    - failed is terminal; a failure reported after delivered/opened is late and ignored;
    - a late ``sent`` after ``delivered`` changes nothing.
    """
    if state.seen(_FAILED.key) or kind is StatusKind.IGNORED:
        return []
    if kind is StatusKind.SENT:
        wanted = [_SENT]
    elif kind is StatusKind.DELIVERED:
        wanted = [_SENT, _DELIVERED]
    elif kind is StatusKind.OPENED:
        wanted = [_SENT, _DELIVERED, _OPENED]
    else:  # FAILED
        if state.seen(_DELIVERED.key) or state.seen(_OPENED.key):
            return []
        wanted = [_FAILED]
    return [i for i in wanted if not state.seen(i.key)]
