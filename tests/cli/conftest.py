"""Fixtures for the ``channel`` operator commands: an azure-servicebus double at the SDK boundary, the Dataverse and
Twilio emulators (Twilio with the account-fetch endpoint the doctor calls), a complete set of settings, and the
real-time journeys outbound custom API as ``channel provision --rtj`` creates it."""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace, TracebackType
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.servicebus import ServiceBusSubQueue
from azure.servicebus.exceptions import MessagingEntityNotFoundError, ServiceBusConnectionError

from devtools.emulators._base import Incoming, Response
from devtools.emulators.dataverse import DataverseEmulator, seed_demo
from devtools.emulators.twilio import TwilioEmulator
from provisioning.rtj_definition import RELAY_PLUGIN_TYPE, RtjChannel
from shared.adapters.dataverse import DataverseClient
from shared.adapters.tokens import StaticToken

TWILIO_SID = "AC" + "2" * 32
TWILIO_TOKEN = "cli-auth-token"
DATAVERSE_TOKEN = "cli-dataverse-token"
QUEUES = ("activities", "callbacks", "activities-poison")
_ACCOUNT_RE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)\.json$")


# ------------------------------------------------------------------------------------------------- Service Bus
@dataclass
class FakeMessage:
    """Shaped like ``ServiceBusReceivedMessage``: bytes-keyed application properties, a generator body."""

    data: bytes
    message_id: str
    sequence_number: int
    content_type: str | None = "application/json"
    application_properties: dict[bytes, Any] = field(default_factory=dict)
    dead_letter_reason: str | None = None
    dead_letter_error_description: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    delivery_count: int = 0
    enqueued_time_utc: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 9, 30, tzinfo=UTC))

    @property
    def body(self) -> Iterator[bytes]:
        return iter([self.data])

    def props(self) -> dict[str, Any]:
        return {k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in self.application_properties.items()}


def _amqp(properties: dict[Any, Any] | None) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for key, value in (properties or {}).items():
        k = key if isinstance(key, bytes) else str(key).encode()
        out[k] = value.encode() if isinstance(value, str) else value
    return out


@dataclass
class FakeQueue:
    active: list[FakeMessage] = field(default_factory=list)
    dead: list[FakeMessage] = field(default_factory=list)
    scheduled: int = 0


@dataclass
class FakeNamespace:
    queues: dict[str, FakeQueue] = field(default_factory=lambda: {q: FakeQueue() for q in QUEUES})
    admin_forbidden: bool = False  # a Listen/Send-only connection string
    unreachable: bool = False
    fail_sends_to: set[str] = field(default_factory=set)
    sent: list[tuple[str, Any]] = field(default_factory=list)  # (queue, the ServiceBusMessage the code built)
    abandoned: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    closed: int = 0
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def queue(self, name: str) -> FakeQueue:
        if self.unreachable:
            raise ServiceBusConnectionError(message="Failed to initiate the connection due to exception: [Errno -2]")
        if name not in self.queues:
            raise MessagingEntityNotFoundError(message=f"The messaging entity 'sb://fake/{name}' could not be found.")
        return self.queues[name]

    def add(
        self,
        queue: str,
        body: bytes = b"{}",
        *,
        dead: bool = False,
        properties: dict[str, Any] | None = None,
        message_id: str | None = None,
        reason: str | None = None,
        description: str | None = None,
    ) -> FakeMessage:
        message = FakeMessage(
            body,
            message_id or uuid.uuid4().hex,
            next(self._seq),
            application_properties=_amqp(properties),
            dead_letter_reason=reason,
            dead_letter_error_description=description,
        )
        target = self.queues[queue]
        (target.dead if dead else target.active).append(message)
        return message


class FakeSender:
    def __init__(self, ns: FakeNamespace, queue: str) -> None:
        self.ns, self.queue_name = ns, queue

    def __enter__(self) -> FakeSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ns.closed += 1

    def send_messages(self, message: Any) -> None:
        queue = self.ns.queue(self.queue_name)
        if self.queue_name in self.ns.fail_sends_to:
            raise ServiceBusConnectionError(message="connection dropped while sending")
        self.ns.sent.append((self.queue_name, message))
        queue.active.append(
            FakeMessage(
                b"".join(message.body),
                str(message.message_id),
                next(self.ns._seq),
                content_type=message.content_type,
                application_properties=_amqp(message.application_properties),
                correlation_id=message.correlation_id,
                subject=message.subject,
            )
        )


class FakeReceiver:
    def __init__(self, ns: FakeNamespace, queue: str, dead_letter: bool) -> None:
        self.ns, self.queue_name, self.dead_letter = ns, queue, dead_letter
        self.locked: dict[int, FakeMessage] = {}

    def __enter__(self) -> FakeReceiver:
        self._messages()  # opening a link to a missing entity fails
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.locked.clear()  # closing the link releases the locks
        self.ns.closed += 1

    def _messages(self) -> list[FakeMessage]:
        queue = self.ns.queue(self.queue_name)
        return queue.dead if self.dead_letter else queue.active

    def peek_messages(self, max_message_count: int = 1, *, sequence_number: int = 0) -> list[FakeMessage]:
        found = [m for m in self._messages() if m.sequence_number >= sequence_number]
        return sorted(found, key=lambda m: m.sequence_number)[:max_message_count]

    def receive_messages(self, max_message_count: int = 1, max_wait_time: float | None = None) -> list[FakeMessage]:
        free = [m for m in self._messages() if m.sequence_number not in self.locked]
        batch = free[:max_message_count]
        for message in batch:
            message.delivery_count += 1
            self.locked[message.sequence_number] = message
        return batch

    def complete_message(self, message: FakeMessage) -> None:
        assert self.locked.pop(message.sequence_number, None) is not None, "complete without a lock"
        self._messages().remove(message)
        self.ns.completed.append(message.sequence_number)

    def abandon_message(self, message: FakeMessage) -> None:
        assert self.locked.pop(message.sequence_number, None) is not None, "abandon without a lock"
        self.ns.abandoned.append(message.sequence_number)


class FakeClient:
    def __init__(self, ns: FakeNamespace) -> None:
        self.ns = ns

    def get_queue_sender(self, queue_name: str) -> FakeSender:
        return FakeSender(self.ns, queue_name)

    def get_queue_receiver(
        self, queue_name: str, *, sub_queue: Any = None, max_wait_time: float | None = None
    ) -> FakeReceiver:
        assert sub_queue in (None, ServiceBusSubQueue.DEAD_LETTER)
        return FakeReceiver(self.ns, queue_name, dead_letter=sub_queue is not None)

    def close(self) -> None:
        self.ns.closed += 1


class FakeAdmin:
    def __init__(self, ns: FakeNamespace) -> None:
        self.ns = ns

    def get_queue_runtime_properties(self, queue_name: str) -> SimpleNamespace:
        if self.ns.admin_forbidden:
            raise ClientAuthenticationError("Unauthorized: Manage claim is required for this operation")
        if self.ns.unreachable:
            raise ServiceBusConnectionError(message="Failed to initiate the connection")
        if queue_name not in self.ns.queues:
            raise ResourceNotFoundError(f"Entity '{queue_name}' was not found")
        queue = self.ns.queues[queue_name]
        return SimpleNamespace(
            name=queue_name,
            active_message_count=len(queue.active),
            dead_letter_message_count=len(queue.dead),
            scheduled_message_count=queue.scheduled,
        )

    def close(self) -> None:
        self.ns.closed += 1


@dataclass
class FakeServiceBus:
    """The factory the commands take (``client()`` / ``admin()``)."""

    ns: FakeNamespace = field(default_factory=FakeNamespace)

    def client(self) -> FakeClient:
        return FakeClient(self.ns)

    def admin(self) -> FakeAdmin:
        return FakeAdmin(self.ns)


@pytest.fixture
def bus() -> FakeServiceBus:
    return FakeServiceBus()


# ------------------------------------------------------------------------------------------------- emulators
class TwilioWithAccounts(TwilioEmulator):
    """The Twilio emulator plus ``GET /2010-04-01/Accounts/{sid}.json`` (basic auth), which ``doctor`` calls."""

    account_status = "active"

    def _route(self, request: Incoming) -> Response:
        match = _ACCOUNT_RE.match(request.path)
        if match is None:
            return super()._route(request)
        scheme, _, blob = request.header("authorization").partition(" ")
        user, _, password = base64.b64decode(blob or b"").decode(errors="replace").partition(":")
        authorised = (
            scheme.lower() == "basic"
            and hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and match.group("sid") == self.account_sid
        )
        if not authorised:
            return self._error(401, 20003, "Authenticate", [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        body = {"sid": self.account_sid, "friendly_name": "cli tests", "status": self.account_status, "type": "Full"}
        return Response(200, json.dumps(body).encode(), [("Content-Type", "application/json")])


@dataclass
class Org:
    dataverse: DataverseEmulator
    twilio: TwilioWithAccounts
    ids: dict[str, Any]
    env: dict[str, str]


@pytest.fixture
def org(azurite_connection_string: str) -> Iterator[Org]:
    dataverse = DataverseEmulator(token=DATAVERSE_TOKEN)
    twilio = TwilioWithAccounts(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    ids = seed_demo(dataverse)
    env = {
        "DATAVERSE_URL": dataverse.url,
        "DATAVERSE_STATIC_TOKEN": DATAVERSE_TOKEN,
        "DATAVERSE_MAX_RETRIES": "1",
        "AzureWebJobsStorage": azurite_connection_string,
        "STATE_TABLE_NAME": "doctor" + uuid.uuid4().hex[:10],
        "ServiceBusConnection": "Endpoint=sb://fake.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "twilio",
        "CALLBACK_BASE_URL": "https://channel.example.com",
        "MESSAGE_BODY_COLUMN": ids["message_body_column"],
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE_URL": twilio.url,
    }
    try:
        yield Org(dataverse, twilio, ids, env)
    finally:
        twilio.stop()
        dataverse.stop()


def create_custom_api(
    dataverse: DataverseEmulator, *, bound: bool = True, response_type: int = 10, **columns: Any
) -> str:
    """The custom API as ``channel provision --rtj`` creates it (its own request body, ``columns`` changed), through
    the Web API."""
    dataverse.enable_rtj()
    plugin = dataverse.add_plugin_type(RELAY_PLUGIN_TYPE) if bound else None
    channel = RtjChannel(prefix="cr123")
    body = {**channel.custom_api_body(plugin), **columns}
    body["CustomAPIResponseProperties"] = [{**channel.response_property_body(), "type": response_type}]
    client = DataverseClient(dataverse.url, StaticToken(DATAVERSE_TOKEN), max_retries=0)
    client.request("POST", "customapis", body=body, operation="create custom API")
    return channel.custom_api_name
