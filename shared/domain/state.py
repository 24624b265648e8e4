"""The durable per-activity state record (outbound marketing) and its send/report state machine, as pure functions.

One record per Custom Channel Activity row (keyed by the row id) makes processing exactly-once:
``send_status`` says whether the provider was called, and ``due``/``recorded`` say which interactions must still
be / have been reported to Dataverse. Interactions are added to ``due`` first and moved to ``recorded`` after
Dataverse accepted them, so a crash never loses one.

Every transition takes a record and returns the changed record, or None when it does not apply to the record as it
is now (the store then writes nothing): the store's read-modify-write retries them on fresh data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    AMBIGUOUS = "ambiguous"  # the provider may have it: reconciled by asking it (docs/reconciliation.md)


FINAL_SEND_STATES = frozenset({SendStatus.SENT, SendStatus.FAILED, SendStatus.SUPPRESSED, SendStatus.AMBIGUOUS})


@dataclass
class ActivityState:
    activity: ActivityRef
    send_status: SendStatus = SendStatus.CLAIMED
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
    # Reconciliation (docs/reconciliation.md): the send window of the latest attempt (its lease deadline; the
    # claim was one lease earlier), the first attempt of the repeatable series, and the reconciliation so far.
    attempt_until: datetime | None = None
    first_attempt_until: datetime | None = None
    reconcile_attempts: int = 0
    reconcile_note: str | None = None
    org_id: str | None = None  # the registered org (MULTI_ORG, issue #15): its reports go there
    etag: str | None = None

    @property
    def key(self) -> str:
        return self.activity.row_id

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
_CLICKED = Interaction(ResponseType.CLICKED)


# --- send ------------------------------------------------------------------------------------------------------
def suppressed(s: ActivityState) -> ActivityState | None:
    """The compliance column is set: nothing is sent, nothing is recorded."""
    return replace(s, send_status=SendStatus.SUPPRESSED) if s.send_status is SendStatus.CLAIMED else None


def not_sent(s: ActivityState, reason: str, phone_masked: str) -> ActivityState | None:
    """Nothing can be sent (no usable phone, empty text): ``failed`` without calling the provider."""
    if s.send_status is not SendStatus.CLAIMED:
        return None
    failed = replace(s, send_status=SendStatus.FAILED, last_error=reason, phone_masked=phone_masked)
    return add_due(failed, _FAILED)


def claim(s: ActivityState, *, provider: str, lease_until: datetime, phone_masked: str) -> ActivityState | None:
    """Take the send lease: only an unsent record can be claimed."""
    if s.send_status is not SendStatus.CLAIMED:
        return None
    return replace(
        s,
        send_status=SendStatus.SENDING,
        lease_until=lease_until,
        provider=provider,
        phone_masked=phone_masked,
        send_attempts=s.send_attempts + 1,
        attempt_until=lease_until,
        first_attempt_until=s.first_attempt_until or lease_until,
    )


def accepted(s: ActivityState, *, provider: str, message_id: str) -> ActivityState:
    """The provider took the message: ``sent`` is due (a delivery report that came first keeps its message id)."""
    moved = replace(
        s,
        send_status=SendStatus.SENT,
        lease_until=None,
        provider=provider,
        provider_message_id=s.provider_message_id or message_id,
        last_error=None,
    )
    return add_due(moved, _SENT)


def rejected(s: ActivityState, *, code: str, detail: str) -> ActivityState | None:
    """The provider refused the message for good: ``failed``."""
    failed = replace(s, send_status=SendStatus.FAILED, lease_until=None, last_error=f"{code} {detail}")
    return add_due(failed, _FAILED)


def released(s: ActivityState, *, detail: str) -> ActivityState | None:
    """The provider certainly did not take it (connect failure, 429, 5xx): unsent again, to be retried."""
    if s.send_status is not SendStatus.SENDING:
        return None
    # The provider certainly has nothing from this series: the next attempt starts a new repeatable series.
    return replace(s, send_status=SendStatus.CLAIMED, lease_until=None, last_error=detail, first_attempt_until=None)


def ambiguous(s: ActivityState, *, detail: str) -> ActivityState | None:
    """The provider may have the message: never resent blindly; reconciled by asking the provider (or resolved by
    a delivery report, whichever comes first)."""
    if s.send_status is not SendStatus.SENDING:
        return None
    return replace(s, send_status=SendStatus.AMBIGUOUS, lease_until=None, last_error=detail)


# --- reconciliation (docs/reconciliation.md) --------------------------------------------------------------------
def reconcile_found(s: ActivityState, *, provider: str, message_id: str, note: str) -> ActivityState | None:
    """The provider holds our message: accepted with its id (``sent`` is due; delivery reports flow as usual)."""
    if s.send_status is not SendStatus.AMBIGUOUS:
        return None
    return replace(accepted(s, provider=provider, message_id=message_id), reconcile_note=note)


def reconcile_claim(
    s: ActivityState, *, provider: str, lease_until: datetime, phone_masked: str, note: str
) -> ActivityState | None:
    """Provably absent (or the provider deduplicates a replay): take the send lease again, as any send does."""
    if s.send_status is not SendStatus.AMBIGUOUS:
        return None
    unsent = replace(s, send_status=SendStatus.CLAIMED, reconcile_note=note)
    return claim(unsent, provider=provider, lease_until=lease_until, phone_masked=phone_masked)


def reconcile_deferred(s: ActivityState, *, note: str) -> ActivityState | None:
    """Cannot tell now: still ambiguous, asked again later; nothing is sent."""
    if s.send_status is not SendStatus.AMBIGUOUS:
        return None
    return replace(s, reconcile_attempts=s.reconcile_attempts + 1, reconcile_note=note[:300])


# --- reports and replies ---------------------------------------------------------------------------------------
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


def on_status(s: ActivityState, *, provider: str, message_id: str, kind: StatusKind) -> ActivityState | None:
    """A delivery report. It proves the provider has the message, so an uncertain send resolves to ``sent``."""
    original = s
    if s.send_status in (SendStatus.SUPPRESSED, SendStatus.FAILED) and not s.provider_message_id:
        return None  # we never sent this one: a report for it is bogus
    if s.send_status in (SendStatus.SENDING, SendStatus.AMBIGUOUS, SendStatus.CLAIMED):
        resolved = replace(s, send_status=SendStatus.SENT, lease_until=None, provider_message_id=message_id)
        s = add_due(replace(resolved, provider=provider), _SENT)
    s = add_due(s, *interactions_for_status(s, kind))
    return None if s == original else s


def on_keyword(s: ActivityState, keyword: str) -> ActivityState | None:
    """A reply: ``keyword:<word>`` once per activity and word."""
    item = Interaction(ResponseType.KEYWORD, keyword)
    return None if s.seen(item.key) else add_due(s, item)


def on_click(s: ActivityState) -> ActivityState | None:
    """A contact followed a short link of the text: ``clicked`` once per activity. The link only existed in the text
    the provider took, so an uncertain send resolves to ``sent`` (as a delivery report does)."""
    if s.seen(_CLICKED.key) or s.send_status in (SendStatus.SUPPRESSED, SendStatus.CLAIMED):
        return None
    if s.send_status in (SendStatus.SENDING, SendStatus.AMBIGUOUS):
        s = add_due(replace(s, send_status=SendStatus.SENT, lease_until=None), _SENT)
    return add_due(s, _CLICKED)
