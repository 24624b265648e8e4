"""Fault-injection engine: thousands of activities through the real service, with faults and worker crashes.

What is real: the use cases behind :class:`ChannelService` (entered only through its trigger entry points
``handle_activity_batch`` / ``handle_callback`` / ``handle_queued_callbacks``), the record store on
:class:`MemoryStore` (Table Storage ETag semantics), the
real :class:`DataverseClient` (inline retries, Retry-After, backoff) and the real :class:`TwilioProvider` (send
classification, signature check, form parsing). Only the wire is simulated: a fake ``requests`` session answers for
Dataverse and Twilio, with injected 429 / 503 / timeouts / 5xx, and Service Bus is a discrete-event scheduler with
PeekLock semantics (an abandoned message is redelivered at once, a crashed one when its lock expires, scheduled
messages when due, dead-lettering after ``max_delivery_count``).

Worker crashes: every side-effecting step (state-table call, Dataverse request, provider request, queue publish,
message completion) is a *step*. An invocation may be armed to die before step *k*: :class:`Crash` is a
``BaseException`` the service does not handle, and once raised every further step of that invocation raises it too
(a dead process runs no clean-up). The crash label names the two steps it fell between.

Concurrency: while one worker waits on I/O (a request's latency, a Retry-After, a backoff, the flush-lease poll)
other due events run *inside* that wait, so two workers really interleave on the same records (bounded nesting).
Time is a fake clock: a run of 10,000 activities covers hours of simulated time in seconds.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from devtools.emulators._base import Incoming
from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.twilio import twilio_signature
from shared.adapters.dataverse import DataverseClient
from shared.adapters.memory import MemoryStore
from shared.adapters.pacing import Pacer
from shared.adapters.tokens import StaticToken
from shared.app.deps import build_deps
from shared.domain.models import InboundHttpRequest
from shared.domain.state import ActivityState, SendStatus
from shared.ports import QueueMessage
from shared.providers.acs import AcsProvider
from shared.providers.twilio import TwilioProvider
from shared.records.codecs import ACTIVITIES
from shared.records.store import RecordStore
from shared.service import ChannelService
from tests.fakes import config as channel_config
from tests.fault import cloud_api
from tests.fault.acs_side import ACS_KEY, ACS_SECRET, ACS_URL, AcsSession, acs_statuses, event_request
from tests.fault.provider_view import TwilioView
from tests.helpers import MESSAGE_ID, MESSAGE_TABLE, activity_message, fixture_bytes

TWILIO_SID = "AC" + "f" * 32
TWILIO_TOKEN = "fault-run-twilio-auth-token-7Q2x"
DATAVERSE_TOKEN = "fault-run-dataverse-token-Zr81"
CALLBACK_URL = "https://channel.example.net/api/callbacks/twilio"
DATAVERSE_URL = "https://contoso.crm.dynamics.com"
TWILIO_URL = "https://api.twilio.example"
SENDER = "+15005550006"
ACTIVITY_QUEUE = "activities"
CALLBACK_QUEUE = "callbacks"
POISON_QUEUE = "activities-poison"
TEMPLATE = "Hi {{contact.firstname}}, your code is {{contact.cr123_code}}"
START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


class Crash(BaseException):
    """The worker process died at this point. Deliberately not an ``Exception``: nothing in the app catches it."""


@dataclass(frozen=True)
class Rates:
    duplicate_messages: float = 0.10  # activities whose message Dataverse/Service Bus delivers twice
    dataverse_faults: float = 0.20  # Dataverse requests answered 429 / 503 / timeout
    provider_5xx: float = 0.10  # provider send requests answered 5xx (504 = may have been accepted)
    crash: float = 0.10  # invocations armed to die at a random step
    poison: float = 0.01  # malformed messages mixed into the activity queue
    no_phone: float = 0.01
    opted_out: float = 0.01
    rejected_phone: float = 0.01  # provider refuses the number permanently (21211)
    duplicate_callbacks: float = 0.10
    no_callbacks: float = 0.02  # carrier never reports: no status callback at all
    replies: float = 0.06
    stop_replies: float = 0.015
    lookup_faults: float = 0.10  # provider lookups (Twilio Messages list) answered 500 / 429 / timeout (issue #13)
    list_lag_seconds: float = 300.0  # a created message appears in the provider's list up to this much later


@dataclass
class Invocation:
    kind: str
    crash_before: int | None
    steps: int = 0
    last_step: str = "start"
    dead: bool = False
    pending: list[tuple[str, str]] = field(default_factory=list)  # interactions Dataverse took, not yet recorded


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    kind: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class Truth:
    """What really happened to one activity, independent of what the app believes."""

    index: int
    row_id: str
    activity_id: str
    contact_id: str
    phone: str | None
    kind: str  # ok | no_phone | opted_out | rejected
    code: str
    accepted_sids: list[str] = field(default_factory=list)
    rejected_calls: int = 0
    answered_statuses: set[str] = field(default_factory=set)
    answered_keywords: set[str] = field(default_factory=set)
    stop_answered: bool = False
    reply_texts: list[str] = field(default_factory=list)


class CaptureHandler(logging.Handler):
    """Keeps every log record's rendered text and custom dimensions (scanned for leaks after the run)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.events: Counter[str] = Counter()
        self.ambiguous_rows: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        dims = getattr(record, "custom_dimensions", None)
        text = message if not dims else f"{message} {dims}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.lines.append(text)
        if isinstance(dims, Mapping):
            event = str(dims.get("event", ""))
            self.events[event] += 1
            if event == "activity.ambiguous":
                self.ambiguous_rows.add(str(dims.get("activity_row")))


def _response(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else json.dumps(body).encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    response.encoding = "utf-8"
    return response


class Simulation:
    def __init__(
        self,
        n: int,
        seed: int = 1,
        rates: Rates | None = None,
        *,
        max_nesting: int = 2,
        instances: int = 3,
        batch_size: int = 16,
        callback_processing: str = "queued",
        provider: str = "twilio",  # twilio | acs (tests/fault/acs_side.py) | whatsapp (tests/fault/cloud_api.py)
        reconcile_after: float = 600.0,
        arrival_rate: float = 20.0,
    ) -> None:
        self.n = n
        self.provider_name = provider
        self.seed = seed
        self.rates = rates or Rates()
        self.rng = random.Random(seed)
        self.max_nesting = max_nesting
        self.batch_size = batch_size
        self.callback_processing = callback_processing
        self.provider = provider  # twilio | acs (tests/fault/acs_side.py)
        self.reconcile_after = timedelta(seconds=reconcile_after)
        self.arrival_rate = arrival_rate  # activities per simulated second (a backlog builds above ~0.3/s)
        self.last_response = requests.Response()
        self.dataverse = DataverseEmulator(token=DATAVERSE_TOKEN)
        self.now = START
        self._events: list[Event] = []
        self._seq = itertools.count()
        self._stack: list[Invocation] = []
        self.store = MemoryStore()
        self.counters: Counter[str] = Counter()
        self.crash_windows: Counter[str] = Counter()
        self.dv_faults: Counter[str] = Counter()
        self.provider_faults: Counter[str] = Counter()
        self.interactions: list[tuple[str, str]] = []  # (activity_id, key) as Dataverse committed them
        self.unacked: Counter[tuple[str, str]] = Counter()  # committed but the app never learnt it
        self.unacked_timeouts: Counter[tuple[str, str]] = Counter()
        self.poisoned: list[tuple[str, str, int]] = []  # (message id, reason, attempts)
        self.dead_letters: list[str] = []
        self.truths: list[Truth] = []
        self.by_activity_id: dict[str, Truth] = {}
        self.by_row: dict[str, Truth] = {}
        self.expected_poison: dict[str, str] = {}  # message id -> expected reason
        self.attempts: Counter[str] = Counter()  # invocations per original message id
        self.callbacks_rejected: list[str] = []
        self.sid_to_row: dict[str, str] = {}
        self.capture = CaptureHandler()
        self.max_nesting_seen = 0
        self._steps_per_message: dict[str, float] = {}

        self.twilio_view = TwilioView(
            self.rng, TWILIO_SID, max_lag_seconds=self.rates.list_lag_seconds, fault_rate=self.rates.lookup_faults
        )
        self.acs_session = AcsSession(self)
        self.crashing_store = _CrashingStore(self.store, self)
        self.instances = [self._new_instance() for _ in range(instances)]
        self.service = self.instances[0]
        self.restarts = 0

    def _new_instance(self) -> ChannelService:
        """One Functions worker process: its own caches (Dataverse metadata/rows, state), shared backends."""
        dataverse = DataverseClient(
            DATAVERSE_URL,
            StaticToken(DATAVERSE_TOKEN),
            session=_DataverseSession(self),  # type: ignore[arg-type]
            timeout=20.0,
            max_retries=4,
            sleep=self.idle,
            pacer=Pacer(clock=self._timestamp, sleep=self.idle),
            clock=self._timestamp,
        )
        provider: Any = cloud_api.provider(self) if self.provider_name == "whatsapp" else None
        provider = provider or TwilioProvider(
            account_sid=TWILIO_SID,
            auth_token=TWILIO_TOKEN,
            sender=SENDER,
            messaging_service_sid=None,
            api_base_url=TWILIO_URL,
            callback_url=CALLBACK_URL,
            session=_TwilioSession(self),  # type: ignore[arg-type]
            timeout=10.0,
        )
        if self.provider == "acs":
            provider = AcsProvider(
                endpoint=ACS_URL,
                sender=SENDER,
                eventgrid_secret=ACS_SECRET,
                access_key=ACS_KEY,
                session=self.acs_session,
            )
        deps = build_deps(
            channel_config(
                provider_name=self.provider,
                callback_url=CALLBACK_URL.replace("twilio", self.provider),
                reconcile_after=self.reconcile_after,
                max_attempts=8,
                retry_base_seconds=30.0,
                send_lease=timedelta(seconds=120),
                send_concurrency=1,  # the simulation interleaves workers itself (deterministically)
                callback_processing=self.callback_processing,
            ),
            dataverse,
            provider,
            self.crashing_store,
            _SimQueue(self),
            _SimClock(self),
        )
        return ChannelService(deps)

    def _pick_instance(self) -> int:
        return self.rng.randrange(len(self.instances))

    def _crashed(self, instance: int) -> None:
        """The process died: Service Bus / the provider will retry elsewhere; the host starts a fresh worker."""
        self.counters["worker crashes"] += 1
        self.instances[instance] = self._new_instance()
        self.restarts += 1

    # ----------------------------------------------------------------------------------- time and events
    def _timestamp(self) -> float:
        return self.now.timestamp()

    def clock_now(self) -> datetime:
        return self.now

    def schedule(self, at: datetime, kind: str, **payload: Any) -> None:
        heapq.heappush(self._events, Event(max(at, self.now), next(self._seq), kind, payload))

    def idle(self, seconds: float) -> None:
        """A worker waits (I/O latency, Retry-After, backoff): other due events run meanwhile (interleaving)."""
        until = self.now + timedelta(seconds=max(seconds, 0.0))
        if len(self._stack) <= self.max_nesting:
            # Only what falls due while this worker waits, and only until its wake-up time has come.
            while self._events and self._events[0].at <= until and self.now < until:
                event = heapq.heappop(self._events)
                self.now = max(self.now, event.at)
                self._run(event)
        self.now = max(self.now, until)

    def step(self, name: str) -> None:
        """Called before every side-effecting step of the current invocation: the worker may die here."""
        if not self._stack:
            return
        invocation = self._stack[-1]
        if invocation.dead:
            raise Crash(name)
        if invocation.crash_before is not None and invocation.steps == invocation.crash_before:
            invocation.dead = True
            self.crash_windows[f"{invocation.kind}: {invocation.last_step} -> {name}"] += 1
            for key in invocation.pending:
                self.unacked[key] += 1
            raise Crash(name)
        invocation.steps += 1
        invocation.last_step = name

    @property
    def invocation(self) -> Invocation | None:
        return self._stack[-1] if self._stack else None

    @contextmanager
    def _invocation(self, kind: str, messages: int = 1) -> Iterator[Invocation]:
        """One function invocation. With probability ``rates.crash`` per message it is armed to die before a step
        drawn uniformly over the steps such invocations have taken so far (so every pair of steps gets hit)."""
        crash = None
        if self.rng.random() < self.rates.crash:
            typical = self._steps_per_message.get(kind, 12.0) * messages
            crash = self.rng.randrange(int(typical) + 2)
        invocation = Invocation(kind, crash)
        self._stack.append(invocation)
        self.max_nesting_seen = max(self.max_nesting_seen, len(self._stack))
        try:
            yield invocation
            self.step("complete")  # the host completes the message / writes the HTTP answer
            average = self._steps_per_message.get(kind, 12.0)
            self._steps_per_message[kind] = 0.95 * average + 0.05 * (invocation.steps / messages)
        finally:
            self._stack.pop()

    # ----------------------------------------------------------------------------------- set-up
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def populate(self) -> None:
        dv = self.dataverse
        dv.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
        dv.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Fault run", "cr123_body": TEMPLATE})
        dv.add_entity("contact", "contacts", "contactid")
        dv.add_columns("contact", ["mobilephone", "donotphone", "firstname", "cr123_code"])
        dv.add_entity(
            "msdyncrm_customerjourneycustomchannelactivity",
            "msdyncrm_customerjourneycustomchannelactivities",
            "msdyncrm_customerjourneycustomchannelactivityid",
        )
        rates = self.rates
        arrival = START
        poison_bodies = [
            (b"not json at all", "application/json", "invalid_json"),
            (fixture_bytes("dataverse", "activity_create.xml"), "application/xml", "xml_format"),
            (fixture_bytes("dataverse", "activity_update.json"), "application/json", "unexpected_message"),
            (fixture_bytes("dataverse", "activity_bad_entityid.json"), "application/json", "invalid_id"),
            (b"[" * 50_000, "application/json", "invalid_json"),
        ]
        for index in range(self.n):
            arrival += timedelta(seconds=self.rng.expovariate(self.arrival_rate))
            row_id, activity_id, contact_id = self._uuid(), self._uuid(), self._uuid()
            draw = self.rng.random()
            kind = "ok"
            if draw < rates.no_phone:
                kind = "no_phone"
            elif draw < rates.no_phone + rates.opted_out:
                kind = "opted_out"
            elif draw < rates.no_phone + rates.opted_out + rates.rejected_phone:
                kind = "rejected"
            phone = None if kind == "no_phone" else f"+1555{index:07d}"
            code = f"{self.rng.randrange(10**8, 10**9)}"
            truth = Truth(index, row_id, activity_id, contact_id, phone, kind, code)
            self.truths.append(truth)
            self.by_activity_id[activity_id] = truth
            self.by_row[row_id] = truth
            dv.add_row(
                "contact",
                contact_id,
                {
                    "mobilephone": phone,
                    "donotphone": kind == "opted_out",
                    "firstname": f"Contact{index}",
                    "cr123_code": code,
                },
            )
            body = activity_message(row_id=row_id, contact_id=contact_id, activity_id=activity_id)
            message_id = f"m{index}"
            self.schedule(arrival, "activity", body=body, message_id=message_id, delivery=1, props={})
            if self.rng.random() < rates.duplicate_messages:
                offset = self.rng.uniform(0, 2) if self.rng.random() < 0.3 else self.rng.uniform(2, 600)
                self.counters["duplicate messages injected"] += 1
                self.schedule(
                    arrival + timedelta(seconds=offset),
                    "activity",
                    body=body,
                    message_id=f"m{index}-dup",
                    delivery=1,
                    props={},
                )
            if self.rng.random() < rates.poison:
                bad, ctype, reason = poison_bodies[self.rng.randrange(len(poison_bodies))]
                poison_id = f"p{index}"
                self.expected_poison[poison_id] = reason
                self.schedule(
                    arrival, "activity", body=bad, message_id=poison_id, delivery=1, props={}, content_type=ctype
                )

    # ----------------------------------------------------------------------------------- running
    def run(self) -> dict[str, Any]:
        channel_logger = logging.getLogger("channel")
        root = logging.getLogger()
        old_levels = (channel_logger.level, root.level)
        root.addHandler(self.capture)
        root.setLevel(logging.DEBUG)
        channel_logger.setLevel(logging.INFO)
        state = random.getstate()
        random.seed(self.seed)  # DataverseClient's backoff jitter
        try:
            self.populate()
            while self._events:
                event = heapq.heappop(self._events)
                self.now = max(self.now, event.at)
                self._run(event)
        finally:
            self.dataverse.stop()
            random.setstate(state)
            root.removeHandler(self.capture)
            channel_logger.setLevel(old_levels[0])
            root.setLevel(old_levels[1])
        return self.report()

    def _run(self, event: Event) -> None:
        if event.kind in ("activity", "queued_callback"):
            # The batch trigger gets what is available: gather the same queue's messages due within half a second.
            batch = [event]
            limit = event.at + timedelta(seconds=0.5)
            while (
                len(batch) < self.batch_size
                and self._events
                and self._events[0].kind == event.kind
                and self._events[0].at <= limit
            ):
                batch.append(heapq.heappop(self._events))
            if event.kind == "activity":
                self._deliver(batch, ACTIVITY_QUEUE, "handle_activity_batch")
            else:
                self._deliver(batch, CALLBACK_QUEUE, "handle_queued_callbacks")
        elif event.kind == "callback":
            self._callback(event)
        else:  # pragma: no cover
            raise ValueError(event.kind)

    def _deliver(self, batch: list[Event], queue: str, handler: str) -> None:
        messages = []
        roots = []
        for event in batch:
            p = event.payload
            root_id = str(p["message_id"]).split(":retry")[0]
            roots.append(root_id)
            self.attempts[root_id] += 1
            self.counters[f"{queue} deliveries"] += 1
            messages.append(
                QueueMessage(
                    queue,
                    p["body"],
                    str(p["message_id"]),
                    p.get("content_type", "application/json"),
                    int(p["delivery"]),
                    dict(p["props"]),
                )
            )
        self.counters[f"{queue} batches"] += 1
        instance = self._pick_instance()
        try:
            with self._invocation(queue, len(batch)):
                getattr(self.instances[instance], handler)(messages)
        except Crash:
            self._crashed(instance)
            for event, root_id in zip(batch, roots, strict=True):
                self.attempts[root_id] -= 1  # a dead worker's attempt does not count as the app's attempt
                self._redeliver(event, lock_expiry=True)
        except Exception:  # noqa: BLE001 - the host abandons the batch: Service Bus redelivers it at once
            self.counters["batches abandoned (exception)"] += 1
            for event in batch:
                self._redeliver(event, lock_expiry=False)

    def _redeliver(self, event: Event, *, lock_expiry: bool) -> None:
        p = dict(event.payload)
        if int(p["delivery"]) >= 10:
            self.dead_letters.append(str(p["message_id"]))
            return
        p["delivery"] = int(p["delivery"]) + 1
        delay = 60.0 if lock_expiry else 0.01  # PeekLock: a dead worker's lock expires after LockDuration
        self.schedule(self.now + timedelta(seconds=delay), event.kind, **p)

    def _callback(self, event: Event) -> None:
        p = event.payload
        params: list[tuple[str, str]] = p["params"]
        url: str = p["url"]
        query = urlsplit(url).query
        if self.provider == "acs":
            request = event_request(p, SENDER, self.now)
        else:
            request = InboundHttpRequest(
                method="POST",
                path="/api/callbacks/twilio",
                query={k: v[0] for k, v in parse_qs(query).items()},
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-twilio-signature": twilio_signature(TWILIO_TOKEN, url, params),
                },
                body=urlencode(params).encode(),
                raw_query=query,
            )
            if self.provider_name == "whatsapp":  # the same callback as a signed Cloud API webhook
                request = cloud_api.webhook_request(params, url)
        self.counters["callback requests"] += 1
        status = 0
        instance = self._pick_instance()
        try:
            with self._invocation("callback"):
                status = self.instances[instance].handle_callback(self.provider, request).status
        except Crash:
            self._crashed(instance)
        except Exception:  # noqa: BLE001 - the host answers 500
            self.counters["callback exceptions (500)"] += 1
            status = 500
        if 200 <= status < 300:
            truth = self.by_row.get(p.get("row_id", ""))
            if truth is not None:
                if p["type"] == "status":
                    truth.answered_statuses.add(p["status"])
                else:
                    truth.answered_keywords.add(p["keyword"])
                    truth.stop_answered |= p["keyword"] == "stop"
            return
        if 400 <= status < 500:
            self.callbacks_rejected.append(f"{status} {p['type']} {p.get('status', '')}")
            return
        # No answer (worker died) or 5xx: the provider retries the webhook (Twilio: connection overrides).
        attempt = int(p.get("attempt", 1))
        if attempt >= 6:
            self.counters["callbacks abandoned by provider"] += 1
            return
        self.counters["callbacks retried by provider"] += 1
        self.schedule(self.now + timedelta(seconds=30 * attempt), "callback", **{**p, "attempt": attempt + 1})

    # ----------------------------------------------------------------------------------- provider side
    def provider_accepted(self, to: str, status_callback: str, body: str = "") -> str:
        sid = "SM" + uuid.UUID(int=self.rng.getrandbits(128)).hex
        self.twilio_view.accept(sid, to, SENDER, body, self.now)
        row_id = parse_qs(urlsplit(status_callback).query)["activity"][0]
        truth = self.by_row[row_id]
        truth.accepted_sids.append(sid)
        self.sid_to_row[sid] = row_id
        rates, rng, t = self.rates, self.rng, self.now
        draw = rng.random()
        if draw < rates.no_callbacks:
            statuses: list[str] = []
        elif draw < rates.no_callbacks + 0.05:
            statuses = ["sent", "delivered", "read"]
        elif draw < rates.no_callbacks + 0.15:
            statuses = ["sent", "undelivered"]
        else:
            statuses = ["sent", "delivered"]
        if self.provider == "acs":
            statuses = acs_statuses(["delivered" if s == "read" else s for s in statuses])
        if statuses and rng.random() < 0.5 and self.provider != "acs":
            statuses.insert(0, "queued")
        if statuses and rng.random() < rates.duplicate_callbacks:
            statuses.append(rng.choice(statuses))
            self.counters["duplicate callbacks injected"] += 1
        for status in statuses:  # independent delays: reports arrive out of order
            params = [
                ("SmsSid", sid),
                ("SmsStatus", status),
                ("MessageStatus", status),
                ("To", to),
                ("MessageSid", sid),
                ("AccountSid", TWILIO_SID),
                ("From", SENDER),
                ("ApiVersion", "2010-04-01"),
            ]
            if status == "undelivered":
                params.append(("ErrorCode", "30003"))
            at = t + timedelta(seconds=rng.uniform(0.2, 90))
            self.schedule(
                at, "callback", type="status", status=status, url=status_callback, params=params, row_id=row_id
            )
        if statuses and statuses[-1] != "undelivered" and "undelivered" not in statuses:
            draw = rng.random()
            replies: list[tuple[str, str]] = []
            if draw < rates.stop_replies:
                replies.append(("STOP", "stop"))
            elif draw < rates.stop_replies + rates.replies:
                text = f"Yes please, ref {truth.code}"
                replies.append((text, "yes"))
                if rng.random() < 0.2:
                    replies.append((text, "yes"))  # the contact sends it twice
            for text, keyword in replies:
                truth.reply_texts.append(text)
                reply_sid = "SM" + uuid.UUID(int=rng.getrandbits(128)).hex
                params = [
                    ("SmsMessageSid", reply_sid),
                    ("NumMedia", "0"),
                    ("SmsSid", reply_sid),
                    ("SmsStatus", "received"),
                    ("Body", text),
                    ("To", SENDER),
                    ("MessageSid", reply_sid),
                    ("AccountSid", TWILIO_SID),
                    ("From", to),
                    ("ApiVersion", "2010-04-01"),
                ]
                at = t + timedelta(seconds=rng.uniform(20, 3600))
                self.schedule(
                    at, "callback", type="reply", keyword=keyword, url=CALLBACK_URL, params=params, row_id=row_id
                )
        return sid

    # ----------------------------------------------------------------------------------- figures
    def report(self) -> dict[str, Any]:
        state_of: dict[str, Any] = {}
        records: RecordStore[ActivityState] = RecordStore(self.store, ACTIVITIES, self.clock_now)  # the table itself
        for truth in self.truths:
            state_of[truth.row_id] = records.get(truth.row_id)
        recorded: dict[str, Counter[str]] = defaultdict(Counter)
        by_type: Counter[str] = Counter()
        for activity_id, key in self.interactions:
            recorded[activity_id][key] += 1
            by_type[key.split(":")[0]] += 1

        duplicate_sends = sum(max(0, len(t.accepted_sids) - 1) for t in self.truths)
        dup_total = dup_crash = dup_timeout = dup_unexplained = 0
        for activity_id, keys in recorded.items():
            for key, count in keys.items():
                extra = count - 1
                if extra <= 0:
                    continue
                dup_total += extra
                by_timeout = min(extra, self.unacked_timeouts[(activity_id, key)])
                by_crash = min(extra - by_timeout, self.unacked[(activity_id, key)])
                dup_timeout += by_timeout
                dup_crash += by_crash
                dup_unexplained += extra - by_timeout - by_crash

        lost_activities: list[str] = []
        lost_callbacks: list[str] = []
        ambiguous: Counter[str] = Counter()
        for truth in self.truths:
            state = state_of[truth.row_id]
            got = recorded.get(truth.activity_id, Counter())
            accepted = bool(truth.accepted_sids)
            status = state.send_status if state is not None else None
            where = f"{truth.kind} row={truth.row_id} state={status} recorded={dict(got)}"
            if state is None or status in (SendStatus.CLAIMED, SendStatus.SENDING):
                lost_activities.append(f"no final state: {where}")
                continue
            if state.due:
                lost_activities.append(f"interactions stranded in due={state.due}: {where}")
            settled = _settled_by(state)
            if status is SendStatus.SENT and (settled or truth.row_id in self.capture.ambiguous_rows):
                how = f"reconciliation: {settled}" if settled else "a delivery report"
                ambiguous[f"send resolved by {how}"] += 1
            if truth.kind == "opted_out":
                if accepted or got:
                    lost_activities.append(f"opted-out contact was sent to / recorded: {where}")
                continue
            if truth.kind == "no_phone":
                if got["failed"] < 1:
                    lost_activities.append(f"missing failed: {where}")
                continue
            if status is SendStatus.AMBIGUOUS:
                if not accepted:
                    ambiguous["worker died before the provider had the message (nothing sent)"] += 1
                    continue
                if not truth.answered_statuses:
                    ambiguous["provider had the message, no delivery report ever came"] += 1
                    for keyword in truth.answered_keywords:
                        if got[f"keyword:{keyword}"] < 1:
                            lost_callbacks.append(f"missing keyword:{keyword}: {where}")
                    continue
                lost_activities.append(f"ambiguous although a delivery report was answered: {where}")
                continue
            if truth.kind == "rejected":
                if accepted:
                    lost_activities.append(f"provider accepted a rejected number: {where}")
                elif got["failed"] < 1:
                    lost_activities.append(f"missing failed: {where}")
                continue
            if not accepted:
                lost_activities.append(f"never sent: {where}")
                continue
            if got["sent"] < 1:
                lost_activities.append(f"missing sent: {where}")
            expected: set[str] = set()
            answered = truth.answered_statuses
            if "read" in answered:
                expected |= {"delivered", "opened"}
            if "delivered" in answered:
                expected.add("delivered")
            if "undelivered" in answered and not expected:
                expected.add("failed")
            expected |= {f"keyword:{k}" for k in truth.answered_keywords}
            for key in sorted(expected):
                if got[key] < 1:
                    lost_callbacks.append(f"missing {key}: {where}")
            contact = self.dataverse.get_row("contact", truth.contact_id) or {}
            if truth.stop_answered and contact.get("donotphone") is not True:
                lost_callbacks.append(f"STOP answered but compliance column not set: {where}")
        if dup_crash:
            ambiguous["interaction re-reported after crash (Dataverse took it, state write lost)"] = dup_crash
        if dup_timeout:
            ambiguous["interaction re-reported after a Dataverse timeout (committed, answer lost)"] = dup_timeout

        poison_ok = poison_bad = 0
        poisoned_ids = {message_id: (reason, attempts) for message_id, reason, attempts in self.poisoned}
        for message_id, reason in self.expected_poison.items():
            got_reason, attempts = poisoned_ids.get(message_id, ("", 0))
            if got_reason == reason and attempts == 1:
                poison_ok += 1
            else:
                poison_bad += 1
        unexpected_poison = [f"{mid}: {reason}" for mid, reason, _ in self.poisoned if mid not in self.expected_poison]
        leaks = self.scan_logs()
        return {
            "seed": self.seed,
            "activities": self.n,
            "messages delivered (incl. duplicates, retries, redeliveries)": self.counters["activities deliveries"],
            "provider sends": sum(len(t.accepted_sids) for t in self.truths),
            "duplicate sends": duplicate_sends,
            "interactions by type": dict(sorted(by_type.items())),
            "interactions total": len(self.interactions),
            "duplicate interactions": dup_total,
            "duplicate interactions unexplained": dup_unexplained,
            "lost activities": len(lost_activities),
            "lost callbacks": len(lost_callbacks),
            "ambiguous cases": dict(ambiguous),
            "left ambiguous": sum(1 for t in self.truths if _status(state_of[t.row_id]) is SendStatus.AMBIGUOUS),
            "reconciliation": self._reconciliation([state_of[t.row_id] for t in self.truths]),
            "poison messages (right reason, one attempt)": f"{poison_ok}/{len(self.expected_poison)}",
            "poison handling failures": poison_bad,
            "unexpected poison": unexpected_poison[:20],
            "unexpected poison count": len(unexpected_poison),
            "dead-lettered by Service Bus": len(self.dead_letters),
            "callbacks rejected (4xx) though genuine": len(self.callbacks_rejected),
            "faults injected": {
                "dataverse": dict(self.dv_faults),
                "provider": dict(self.provider_faults),
                "duplicate messages": self.counters["duplicate messages injected"],
                "duplicate callbacks": self.counters["duplicate callbacks injected"],
                "worker crashes": self.counters["worker crashes"],
            },
            "crash windows hit": len(self.crash_windows),
            "crashes by window (top)": dict(self.crash_windows.most_common(12)),
            "key windows": {
                "provider accepted, state not written": sum(
                    v for k, v in self.crash_windows.items() if "provider.send ->" in k
                ),
                "state written, interaction not reported": sum(
                    v for k, v in self.crash_windows.items() if k.endswith("-> dataverse.POST interaction")
                ),
                "Dataverse took the interaction, state not written": sum(
                    v for k, v in self.crash_windows.items() if "dataverse.POST interaction ->" in k
                ),
            },
            "counters": dict(self.counters),
            "log records": len(self.capture.lines),
            "log leaks": len(leaks),
            "log leak samples": leaks[:5],
            "max concurrent workers": self.max_nesting_seen,
            "lost activity samples": lost_activities[:10],
            "lost callback samples": lost_callbacks[:10],
            "simulated hours": round((self.now - START).total_seconds() / 3600, 1),
        }

    def _reconciliation(self, states: list[ActivityState | None]) -> dict[str, Any]:
        """Reconciliation outcomes (issue #13), read from the state records themselves (their last reconciliation
        note and attempt count), not from the logs."""
        notes = [s.reconcile_note or "" for s in states if s is not None]
        final: Counter[str] = Counter(note.split(":")[0] for note in notes if note)
        view = self.twilio_view
        return {
            "found": final["found"],
            "resent": final["resent"],
            "replayed": final["replayed"],
            "retried (could not tell)": sum(s.reconcile_attempts for s in states if s is not None),
            "left for an operator": sum(n.startswith(("left", "cannot look up")) for n in notes),
            "activities reconciled": sum(1 for note in notes if note),
            "provider lookups": view.lookups,
            "replays answered from the provider's record (ACS)": self.acs_session.replays,
            "lookup faults injected": dict(view.faults),
            "messages not yet listed when asked (lag)": view.lagging_hidden,
        }

    def scan_logs(self) -> list[str]:
        """Full phone numbers, message text, reply text, codes and secrets must never reach a log record."""
        secret_digits = {t.phone.lstrip("+") for t in self.truths if t.phone} | {t.code for t in self.truths}
        texts = [TWILIO_TOKEN, DATAVERSE_TOKEN, ACS_KEY, ACS_SECRET, "your code is"]
        digits = re.compile(r"\d{7,}")
        leaks = []
        for line in self.capture.lines:
            secret = any(run in secret_digits for run in digits.findall(line))
            if secret or any(s in line for s in texts) or "Yes please" in line:
                leaks.append(line[:300])
        return leaks


# ----------------------------------------------------------------------------------------------- fakes on the wire
def _settled_by(state: ActivityState | None) -> str:
    """How reconciliation settled a record (its last note: found / resent / replayed), or ""."""
    note = (state.reconcile_note or "") if state is not None else ""
    decision = note.split(":")[0]
    return decision if decision in ("found", "resent", "replayed") else ""


def _status(state: ActivityState | None) -> SendStatus | None:
    return None if state is None else state.send_status


class _SimClock:
    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def now(self) -> datetime:
        return self._sim.now

    def sleep(self, seconds: float) -> None:
        self._sim.idle(seconds)


class _CrashingStore:
    """MemoryStore (Table Storage ETag semantics) whose every call is a step a worker may die before."""

    def __init__(self, inner: MemoryStore, sim: Simulation) -> None:
        self._inner = inner
        self._sim = sim

    def get(self, partition: str, row: str) -> tuple[dict[str, Any], str] | None:
        self._sim.step("store.get")
        return self._inner.get(partition, row)

    def insert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        self._sim.step("store.insert")
        return self._inner.insert(partition, row, values)

    def replace(self, partition: str, row: str, values: Mapping[str, Any], etag: str) -> str:
        self._sim.step("store.replace")
        etag = self._inner.replace(partition, row, values, etag)
        invocation = self._sim.invocation
        if invocation is not None and invocation.pending and "recorded" in values:
            recorded = set(json.loads(values["recorded"]))
            activity_id = str(values.get("a_activity_id"))
            invocation.pending = [p for p in invocation.pending if not (p[0] == activity_id and p[1] in recorded)]
        return etag

    def upsert(self, partition: str, row: str, values: Mapping[str, Any]) -> str:
        self._sim.step("store.upsert")
        return self._inner.upsert(partition, row, values)


class _SimQueue:
    """Service Bus as the app sees it: publishes become future deliveries (scheduled ones when due)."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        sim = self._sim
        sim.step("queue.publish")
        props = dict(application_properties or {})
        if queue == POISON_QUEUE:
            root = str(props.get("channel-original-message-id") or message_id or "").split(":retry")[0]
            sim.poisoned.append((root, str(props.get("DeadLetterReason")), sim.attempts[root]))
            return
        kind = "activity" if queue == ACTIVITY_QUEUE else "queued_callback"
        mid = message_id or f"cb{next(sim._seq)}"
        at = scheduled_at or sim.now + timedelta(milliseconds=10)
        sim.schedule(at, kind, body=body, message_id=mid, delivery=1, props=props, content_type=content_type)


class _DataverseSession:
    """The Web API as DataverseClient sees it: the Dataverse emulator's own router, called in-process (same
    semantics as over HTTP: metadata, $select, formatted values, In queries, $batch, the action's parameter checks),
    behind injected 429 / 503 / timeouts (some after the server committed)."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        sim = self._sim
        path = urlsplit(url).path
        resource = path.split("/api/data/v9.2/", 1)[1]
        if resource.startswith("EntityDefinitions"):
            op = "dataverse.GET metadata"
        elif resource == "$batch":
            op = "dataverse.POST $batch"
        elif method == "POST":
            op = "dataverse.POST interaction"
        elif method == "GET" and "(" not in resource:
            op = "dataverse.GET In query"
        else:
            op = f"dataverse.{method} row"
        sim.step(op)
        rng = sim.rng
        if rng.random() < sim.rates.dataverse_faults:
            kinds = ["429", "503", "timeout"] + (["timeout-after-commit"] if method != "GET" else ["timeout"])
            kind = rng.choice(kinds)
            sim.dv_faults[kind] += 1
            if kind == "429":
                sim.idle(0.05)
                retry = rng.randint(1, 8)
                return _response(
                    429,
                    {"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}},
                    {"Retry-After": str(retry)},
                )
            if kind == "503":
                sim.idle(0.2)
                return _response(503, {"error": {"code": "0x80040216", "message": "Service unavailable"}})
            if kind == "timeout":
                sim.idle(timeout or 20.0)
                raise requests.ReadTimeout("injected: no answer")
            committed = self._serve(method, path, params, data, headers)  # then the answer is lost
            for key in committed:
                sim.unacked_timeouts[key] += 1
            sim.idle(timeout or 20.0)
            raise requests.ReadTimeout("injected: answer lost after commit")
        sim.idle(rng.uniform(0.02, 0.3))
        before = len(sim.interactions)
        committed = self._serve(method, path, params, data, headers)
        invocation = sim.invocation
        if invocation is not None:
            invocation.pending.extend(committed)
        assert len(sim.interactions) == before + len(committed)
        return sim.last_response

    def _serve(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> list[tuple[str, str]]:
        """Run the request through the emulator; the interactions it committed."""
        sim = self._sim
        emulator = sim.dataverse
        query = urlencode(dict(params or {}))
        target = path + (f"?{query}" if query else "")
        before = len(emulator.interactions)
        response = emulator._route(
            Incoming(
                method=method,
                target=target,
                path=path,
                query_string=query,
                headers={k.lower(): v for k, v in (headers or {}).items()},
                body=data or b"",
            )
        )
        committed = []
        for payload in emulator.interactions[before:]:
            kind = str(payload["ResponseType"])
            key = f"keyword:{payload.get('TriggerKeyword')}" if kind == "keyword" else kind
            committed.append((str(payload["ActivityId"]), key))
        sim.interactions.extend(committed)
        result = requests.Response()
        result.status_code = response.status
        result._content = response.body
        result.headers = CaseInsensitiveDict(dict(response.headers))
        result.encoding = "utf-8"
        sim.last_response = result
        return committed


class _TwilioSession:
    """Answers TwilioProvider's Messages.json posts: accepts (and later fires callbacks), rejects, or fails."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def post(
        self,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: Any = None,
    ) -> requests.Response:
        sim = self._sim
        sim.step("provider.send")
        form = dict(data or {})
        rng = sim.rng
        assert auth == (TWILIO_SID, TWILIO_TOKEN)
        truth = sim.by_row[parse_qs(urlsplit(form["StatusCallback"]).query)["activity"][0]]
        if rng.random() < sim.rates.provider_5xx:
            kind = rng.choice(["500", "503", "503", "504"])
            sim.provider_faults[kind] += 1
            if kind == "504":
                sim.idle(10.0)
                if truth.kind != "rejected" and rng.random() < 0.5:  # timed out after Twilio queued it
                    sim.provider_faults["504 although accepted"] += 1
                    sim.provider_accepted(form["To"], form["StatusCallback"], form["Body"])
                return _response(504, {"code": 20504, "message": "Gateway timeout"})
            sim.idle(0.1)
            return _response(int(kind), {"code": 20500, "message": "Internal server error"})
        sim.idle(rng.uniform(0.05, 0.4))
        if truth.kind == "rejected":
            truth.rejected_calls += 1
            return _response(400, {"code": 21211, "message": f"The 'To' number {form['To']} is not valid."})
        sid = sim.provider_accepted(form["To"], form["StatusCallback"], form["Body"])
        if rng.random() < sim.rates.provider_5xx / 4:  # the answer is lost after Twilio queued it
            sim.provider_faults["read timeout although accepted"] += 1
            sim.idle(10.0)
            raise requests.ReadTimeout("injected: answer lost after Twilio queued the message")
        return _response(201, {"sid": sid, "status": "queued"})

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: Any = None,
    ) -> requests.Response:
        """The Messages list resource (reconciliation lookups), with lag and injected failures."""
        sim = self._sim
        sim.step("provider.lookup")
        assert auth == (TWILIO_SID, TWILIO_TOKEN)
        view = sim.twilio_view
        fault = view.fault()
        if fault == "timeout":
            sim.idle(10.0)
            raise requests.ReadTimeout("injected: list request timed out")
        if fault == "429":
            return _response(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "30"})
        if fault == "500":
            return _response(500, {"code": 20500, "message": "Internal server error"})
        sim.idle(sim.rng.uniform(0.05, 0.3))
        return _response(200, view.page(url, params, sim.now))


def format_table(result: Mapping[str, Any]) -> str:
    """The figures as a two-column table (what ``bench/fault_run.py`` prints)."""
    rows: list[tuple[str, str]] = []
    for key in (
        "activities",
        "messages delivered (incl. duplicates, retries, redeliveries)",
        "provider sends",
        "duplicate sends",
        "interactions total",
        "duplicate interactions",
        "duplicate interactions unexplained",
        "lost activities",
        "lost callbacks",
        "left ambiguous",
        "poison messages (right reason, one attempt)",
        "dead-lettered by Service Bus",
        "callbacks rejected (4xx) though genuine",
        "log records",
        "log leaks",
        "max concurrent workers",
        "simulated hours",
    ):
        rows.append((key, str(result[key])))
    for name, count in result["interactions by type"].items():
        rows.append((f"interactions: {name}", str(count)))
    for name, count in result["ambiguous cases"].items():
        rows.append((f"ambiguous: {name}", str(count)))
    for name, value in result["reconciliation"].items():
        rows.append((f"reconciliation: {name}", json.dumps(value) if isinstance(value, dict) else str(value)))
    for group, values in result["faults injected"].items():
        rows.append((f"injected: {group}", json.dumps(values) if isinstance(values, dict) else str(values)))
    for name, count in result["key windows"].items():
        rows.append((f"crashes: {name}", str(count)))
    rows.append(("crash windows hit (distinct step pairs)", str(result["crash windows hit"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
