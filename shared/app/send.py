"""The one send-under-lease routine, for both contracts (outbound marketing and real-time journeys).

1. :func:`claim`: the record moves unsent → sending under a lease (optimistic concurrency: one worker wins);
2. :func:`send_claimed`: one provider call, then exactly one transition: accepted, rejected (for good),
   released (the provider certainly did not take it: retry later) or ambiguous (it may have: never resent).

A worker that dies between 1 and the state write of 2 leaves the record ``sending``; once the lease has expired,
the next delivery marks it ambiguous (no duplicate text is the priority, see docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

from shared.domain.errors import SendFailedTransient, SendRejected
from shared.domain.models import SendRequest, SendResult
from shared.domain.send import SendMachine
from shared.domain.whatsapp import RichContent
from shared.ports import Provider
from shared.records.store import RecordStore


class SendRecord(Protocol):
    etag: str | None
    updated_at: datetime | None
    lease_until: datetime | None

    @property
    def key(self) -> str: ...


S = TypeVar("S", bound=SendRecord)


@dataclass(frozen=True)
class Attempt(Generic[S]):
    kind: Literal["accepted", "rejected", "released", "ambiguous"]
    record: S
    result: SendResult | None = None
    rejected: SendRejected | None = None
    transient: SendFailedTransient | None = None

    @property
    def detail(self) -> str:
        """What the provider said when it did not accept (empty when it did)."""
        error = self.rejected or self.transient
        return error.detail if error is not None else ""


def send_request(
    key: str, to: str, text: str, callback_url: str, sender: str | None = None, content: RichContent | None = None
) -> SendRequest:
    """What the provider gets: the record key is the idempotency key and rides on the status callback URL."""
    return SendRequest(
        to=to,
        body=text,
        activity_row_id=key,
        status_callback_url=f"{callback_url}{'&' if '?' in callback_url else '?'}activity={key}",  # ?org=<id>&...
        idempotency_key=key,
        sender=sender,
        content=content,  # WhatsApp template / media (issue #17)
    )


def claim(
    store: RecordStore[S], machine: SendMachine[S], key: str, *, provider: str, lease_until: datetime, phone_masked: str
) -> S | None:
    """Take the send lease; the claimed record, or None when another worker moved the record on first."""
    record = store.mutate(
        key, lambda s: machine.claim(s, provider=provider, lease_until=lease_until, phone_masked=phone_masked)
    )
    return record if record.lease_until == lease_until else None


def send_claimed(
    store: RecordStore[S], machine: SendMachine[S], provider: Provider, key: str, request: SendRequest
) -> Attempt[S]:
    """Call the provider for a claimed record and record what happened."""
    try:
        result = provider.send(request)
    except SendRejected as error:
        refused, code, detail = error, error.code, error.detail
        record = store.mutate(key, lambda s: machine.rejected(s, code=code, detail=detail))
        return Attempt("rejected", record, rejected=refused)
    except SendFailedTransient as error:
        transient, detail = error, error.detail
        if transient.retry_safe:
            record = store.mutate(key, lambda s: machine.released(s, detail=detail))
            return Attempt("released", record, transient=transient)
        record = store.mutate(key, lambda s: machine.ambiguous(s, detail=detail))
        return Attempt("ambiguous", record, transient=transient)
    message_id = result.provider_message_id
    record = store.mutate(key, lambda s: machine.accepted(s, provider=provider.name, message_id=message_id))
    return Attempt("accepted", record, result=result)
