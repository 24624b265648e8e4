"""Domain value objects shared by the service layer, the providers and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from shared.domain.whatsapp import RichContent

# How callbacks are reported: "queued" (acknowledge at once, report from the callback queue in batches; the
# settings default) or "inline" (report during the request, queue only what Dataverse cannot take).
CallbackProcessing = Literal["queued", "inline"]


class ResponseType(StrEnum):
    """Response-type ids declared in the channel's tile XML (``<ResponseType id="...">``)."""

    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"  # a short link of the text was followed (link tracking, issue #16)
    FAILED = "failed"
    KEYWORD = "keyword"  # the single custom="True" type: carries TriggerKeyword


ACTIVITY_ENTITY = "msdyncrm_customerjourneycustomchannelactivity"


@dataclass(frozen=True)
class ActivityRef:
    """Everything the CreateInteraction action needs about one Custom Channel Activity row."""

    row_id: str  # the row's primary key (PrimaryEntityId), our idempotency key
    activity_id: str  # msdyncrm_activityid (string), passed as ActivityId
    contact_id: str
    journey_id: str
    iteration_id: str
    entity_type: str  # logical name of the channel's message table
    entity_id: str  # id of the message row, as a string


@dataclass(frozen=True)
class Interaction:
    response_type: ResponseType
    keyword: str | None = None

    @property
    def key(self) -> str:
        if self.response_type is ResponseType.KEYWORD:
            return f"keyword:{self.keyword or ''}"
        return self.response_type.value

    @classmethod
    def from_key(cls, key: str) -> Interaction:
        if key.startswith("keyword:"):
            return cls(ResponseType.KEYWORD, key.split(":", 1)[1])
        return cls(ResponseType(key))


@dataclass(frozen=True)
class Contact:
    contact_id: str
    phone: str | None
    opted_out: bool
    values: dict[str, str] = field(default_factory=dict)  # template column -> display value
    zone: object = None  # CONTACT_TIMEZONE_COLUMN's raw value (IANA name or Dataverse time zone code), if set


@dataclass(frozen=True)
class SendRequest:
    to: str  # E.164
    body: str
    activity_row_id: str  # lets callbacks find the activity (query parameter / tag)
    status_callback_url: str
    idempotency_key: str  # stable per activity: providers that support repeatability use it
    sender: str | None = None  # overrides the configured sender (real-time journeys: the channel instance)
    content: RichContent | None = None  # WhatsApp template and/or media (issue #17); None: the body only
    first_sent: datetime | None = None  # first attempt of the repeatable series (ACS repeatabilityFirstSent)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: str  # provider's initial status, for logs


class StatusKind(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    FAILED = "failed"
    IGNORED = "ignored"  # intermediate statuses (queued, sending, accepted, ...)


@dataclass(frozen=True)
class StatusEvent:
    """A delivery report, normalised from any provider."""

    provider_message_id: str
    kind: StatusKind
    raw_status: str
    activity_hint: str | None = None  # activity row id carried in the callback URL / tag
    error_code: str | None = None
    detail: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class InboundEvent:
    """A reply from a contact, normalised from any provider."""

    provider_message_id: str
    sender: str  # the contact's number (E.164, or whatsapp:+E164)
    recipient: str  # our number
    text: str
    event_id: str | None = None
    keyword: str | None = None  # a WhatsApp button / list reply: its payload, as TriggerKeyword (issue #17)
    opt_out: bool = False  # the provider recognised an opt-out button payload (WHATSAPP_OPT_OUT_PAYLOADS)
    account: str | None = None  # the provider's id of our number when it is not the number (Cloud API phone_number_id)


ProviderEvent = StatusEvent | InboundEvent


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundHttpRequest:
    """A provider callback as the domain sees it (framework-neutral)."""

    method: str
    path: str  # e.g. /api/callbacks/twilio
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw_query: str = ""  # exactly as received, for signature checks

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class ProviderCallback:
    """What a provider made of one HTTP callback: events to apply and the reply the provider expects."""

    events: list[ProviderEvent]
    reply: HttpReply
