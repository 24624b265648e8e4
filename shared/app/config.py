"""What the use cases are configured with, and what they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from shared.app.policy import SendingPolicy
from shared.domain.links import LinkConfig
from shared.domain.models import CallbackProcessing
from shared.domain.rtj_state import RtjState
from shared.domain.state import ActivityState
from shared.domain.whatsapp import NO_TEMPLATE_COLUMNS, TemplateColumns

Record = ActivityState | RtjState  # a record whose due items the outbox reports


@dataclass(frozen=True)
class ChannelConfig:
    provider_name: str
    callback_url: str  # <CALLBACK_BASE_URL>/api/callbacks/<provider>
    message_body_column: str
    contact_phone_column: str
    compliance_column: str
    default_country_code: str | None
    reply_window: timedelta
    opt_out_words: frozenset[str]
    activity_queue: str
    callback_queue: str
    poison_queue: str
    max_attempts: int
    retry_base_seconds: float
    send_lease: timedelta
    callback_processing: CallbackProcessing  # no default: the settings (default "queued") decide
    send_concurrency: int = 8
    links: LinkConfig | None = None  # link tracking (issue #16): None = off
    template_columns: TemplateColumns = NO_TEMPLATE_COLUMNS  # WhatsApp template / media columns (issue #17)
    policy: SendingPolicy = field(default_factory=SendingPolicy)  # quiet hours, segments, the shared rate (issue #14)
    reconcile_after: timedelta = timedelta(seconds=600)  # RECONCILE_AFTER_SECONDS (docs/reconciliation.md)


@dataclass(frozen=True)
class Outcome:
    """What happened to one message or event, for logs, tests and the local runner."""

    result: str  # sent | failed | suppressed | ambiguous | duplicate | poisoned | retry_scheduled | applied | ...
    row_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Handled:
    """A use case's answer: its outcome and the records whose items are now due (for the caller's outbox)."""

    outcome: Outcome
    due: tuple[Record, ...] = ()


def handled(result: str, record: Record | None = None, detail: str | None = None, *, key: str | None = None) -> Handled:
    """An outcome for ``record`` (reported by the outbox if it has anything due)."""
    row = record.key if record is not None else key
    due = (record,) if record is not None and record.due else ()
    return Handled(Outcome(result, row, detail), due)


@dataclass(frozen=True)
class RtjConfig:
    callback_url: str
    default_country_code: str | None
    send_lease: timedelta
