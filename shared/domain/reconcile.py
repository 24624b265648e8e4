"""Reconciliation of ambiguous sends, as pure rules (issue #13; see docs/reconciliation.md).

An ambiguous send (the lease expired, or the provider call timed out after the request left) is settled by asking the
provider what it holds, once its view is settled:

- **found**: the provider holds our message: record it as accepted with the provider's message id;
- **absent**: provably not there: send it now, under the same claim (exactly-once gate) as any send;
- **replay**: the provider deduplicates a resend carrying the same repeatability key (ACS): send the *same* request
  again; the provider answers with the original result if it had it, or executes it now;
- **unknown**: cannot tell (unreachable, throttled, several candidates, outside the replay window): try again later
  with backoff; never resend.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.domain.errors import PoisonMessage

RECONCILE_KIND = "reconcile"
KIND_PROPERTY = "channel-kind"  # application property marking a reconciliation message on the activity queue
CLOCK_SKEW = timedelta(seconds=5)  # tolerance between our clock and the provider's timestamps
MAX_DELAY_SECONDS = 3600.0
REPLAY_SETTLE = timedelta(seconds=5)  # after the lease deadline, before a replay (ACS)
_REPEATABILITY_NAMESPACE = uuid.UUID("5b0f3c2e-7a51-4d0e-9a57-2f1c6f0d1e13")

LookupKind = Literal["found", "absent", "replay", "unknown"]


@dataclass(frozen=True)
class Lookup:
    """The provider's answer to "do you hold a message for this send?"."""

    kind: LookupKind
    message_id: str | None = None
    detail: str = ""
    retry_after: float | None = None
    final: bool = False  # unknown for good: asking again can never tell (only a delivery report can resolve it)


def found(message_id: str, detail: str = "") -> Lookup:
    return Lookup("found", message_id, detail)


def absent(detail: str) -> Lookup:
    return Lookup("absent", detail=detail)


def replay(detail: str) -> Lookup:
    return Lookup("replay", detail=detail)


def unknown(detail: str, retry_after: float | None = None, *, final: bool = False) -> Lookup:
    return Lookup("unknown", detail=detail, retry_after=retry_after, final=final)


@dataclass(frozen=True)
class SentQuery:
    """What identifies the message of one ambiguous send, as the provider would see it."""

    to: str  # E.164 (the provider adds its channel prefix, e.g. whatsapp:)
    body: str
    sender: str | None  # overrides the configured sender (real-time journeys)
    window_start: datetime  # the claim of the ambiguous attempt: the request cannot have left before
    window_end: datetime  # its lease deadline: the request cannot have left after
    first_sent: datetime | None  # the first attempt of the repeatable series (ACS repeatabilityFirstSent)
    asked_at: datetime  # now, by the app's clock
    attributed: Callable[[str], bool] = lambda _message_id: False  # already another record's message?


@dataclass(frozen=True)
class Candidate:
    """One message the provider lists for the recipient (a Twilio Messages list item, normalised)."""

    message_id: str
    created: datetime
    body: str
    outbound: bool = True


def body_digest(text: str) -> str:
    """A digest of the text as the provider stores it (NFC): the match compares digests, logs never see text."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()


def match(query: SentQuery, candidates: Iterable[Candidate]) -> Lookup:
    """The match rule (documented in docs/reconciliation.md). A candidate is ours when it is outbound, created inside
    the attempt's send window (± clock skew), carries the same body digest and is not already attributed to another
    record. No message at all in the window → absent; a message in the window with another text → unknown (absence
    not proven: never resend); exactly one with our text → found; several (identical texts to one number in one
    window, none attributed yet) → unknown, retried later: each of them carries its own activity in its status
    callback URL, so delivery reports and the other records' reconciliations attribute them meanwhile."""
    start, end = query.window_start - CLOCK_SKEW, query.window_end + CLOCK_SKEW
    digest = body_digest(query.body)
    in_window = [
        c for c in candidates if c.outbound and start <= c.created <= end and not query.attributed(c.message_id)
    ]
    ours = [c for c in in_window if body_digest(c.body) == digest]
    if not ours and in_window:
        # A message to this recipient in the window whose stored text differs from ours (a WhatsApp template the
        # provider rendered, the provider's own re-encoding): absence is not proven, so never resend.
        return unknown(f"{len(in_window)} message(s) to this recipient in the send window with another text")
    if not ours:
        return absent("no message to this recipient in the send window")
    if len(ours) > 1:
        return unknown(f"{len(ours)} identical messages in the send window, none attributed yet")
    return found(ours[0].message_id, "one message matches recipient, sender, send window and text digest")


def repeatability_id(record_key: str, first_sent: datetime) -> str:
    """``repeatabilityRequestId``: a GUID derived from the record and its repeatable series (its first attempt), so
    every attempt of the series (and its reconciliation replay) carries the same id."""
    return str(uuid.uuid5(_REPEATABILITY_NAMESPACE, f"{record_key}/{first_sent.isoformat()}"))


def attempt_start(attempt_until: datetime | None, lease: timedelta) -> datetime | None:
    """When an attempt was claimed: its lease deadline minus the lease (the record keeps the deadline)."""
    return None if attempt_until is None else attempt_until - lease


def reconcile_at(
    window_end: datetime,
    delay: timedelta,
    replay_window: timedelta | None,
    now: datetime,
    *,
    in_flight: bool,
) -> datetime:
    """When the provider's view is settled enough to ask: ``delay`` (RECONCILE_AFTER_SECONDS) after the latest
    moment the request could have left (the attempt's lease deadline). A provider that deduplicates a replay
    (``replay_window``: ACS tracks repeatable requests for 5 minutes) answers from its own record, so it is asked at
    once for a send already known to be ambiguous, and right after the lease deadline for one still in flight
    (``in_flight``: the watchdog order published before the call). Never earlier than now."""
    if replay_window is not None:
        return max(now, window_end + REPLAY_SETTLE) if in_flight else now
    return max(now, window_end + delay)


def retry_delay(attempt: int, base_seconds: float, retry_after: float | None) -> float:
    """Backoff between reconciliation attempts (at least the provider's Retry-After)."""
    delay = min(base_seconds * (2.0 ** max(0, attempt - 1)), MAX_DELAY_SECONDS)
    return max(float(delay), float(retry_after or 0.0))


@dataclass(frozen=True)
class ReconcileOrder:
    """The body of a reconciliation message on the activity queue."""

    contract: Literal["outbound"]  # the record type (real-time journeys reconcile on the relay's retry)
    key: str
    not_before: datetime

    def encode(self) -> bytes:
        body = {"kind": RECONCILE_KIND, "contract": self.contract, "key": self.key}
        return json.dumps({**body, "not_before": self.not_before.isoformat()}).encode()


def parse_order(body: bytes) -> ReconcileOrder:
    try:
        data = json.loads(body)
        contract, key, not_before = data["contract"], str(data["key"]), datetime.fromisoformat(data["not_before"])
    except (ValueError, KeyError, TypeError) as error:
        raise PoisonMessage("invalid_reconcile", f"not a reconciliation order: {error.__class__.__name__}") from None
    if data.get("kind") != RECONCILE_KIND or contract != "outbound" or not key:
        raise PoisonMessage("invalid_reconcile", "not a reconciliation order")
    return ReconcileOrder(contract, key, not_before)
