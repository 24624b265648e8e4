"""The two customer orgs of the multi-org benchmark (issue #15) and the process that serves their emulators.

Each org has its own Dataverse emulator (its own organization id, message table, body and phone columns,
contacts, service-protection limiter), and its own sender on one shared Twilio account (the Twilio emulator,
with a thread posting one signed ``delivered`` status callback per accepted message, like a real carrier).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, SupportsIndex

from bench.journey import TOKEN

TWILIO_SID, TWILIO_TOKEN = "AC" + "b" * 32, "bench-twilio-auth-token"
DEFAULT_SENDER = "+15005550001"  # the deployment's TWILIO_FROM; every org overrides it


@dataclass(frozen=True)
class Org:
    key: str  # "A" / "B" in tables
    org_id: str
    tenant_id: str
    table: str  # the message table
    entity_set: str
    body_column: str
    phone_column: str
    sender: str
    message_id: str
    contact_base: int
    phone_prefix: str

    def contact_id(self, i: int) -> str:
        return str(uuid.UUID(int=self.contact_base + i))

    def activity_id(self, i: int) -> str:
        return str(uuid.UUID(int=self.contact_base + 0x0000_0000_0000_1000_0000_000000000000 + i))

    def phone(self, i: int) -> str:
        return f"{self.phone_prefix}{i:07d}"

    def overrides(self) -> dict[str, str]:
        """The org's row in the registry: its columns and its sender (settings overrides, issue #15)."""
        return {
            "MESSAGE_BODY_COLUMN": self.body_column,
            "CONTACT_PHONE_COLUMN": self.phone_column,
            "TWILIO_FROM": self.sender,
        }


ORGS = (
    Org("A", "aaaaaaaa-0000-4000-8000-0000000000a1", "aaaaaaaa-1111-4111-8111-1111111111a1", "cr123_smsmessage",
        "cr123_smsmessages", "cr123_body", "mobilephone", "+15005550006", "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51",
        0xA0A00000_0000_4000_8000_000000000000, "+1415"),
    Org("B", "bbbbbbbb-0000-4000-8000-0000000000b2", "bbbbbbbb-1111-4111-8111-1111111111b2", "fab_textmessage",
        "fab_textmessages", "fab_text", "telephone2", "+15005550007", "9b0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4",
        0xB0B00000_0000_4000_8000_000000000000, "+1628"),
)  # fmt: skip
BY_KEY = {o.key: o for o in ORGS}


def seed_org(org: Org, n: int) -> Any:
    """The org's Dataverse emulator: its message (own table and body column) and ``n`` contacts (own phone column)."""
    from devtools.emulators.dataverse import DataverseEmulator

    dataverse = DataverseEmulator(token=TOKEN, organization_id=org.org_id, tenant_id=org.tenant_id)
    dataverse.add_entity(org.table, org.entity_set, f"{org.table}id")
    dataverse.add_row(org.table, org.message_id, {org.body_column: f"Hi {{{{contact.firstname}}}}, from {org.key}."})
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", ["firstname", org.phone_column, "donotphone"])
    for i in range(n):
        dataverse.add_row(
            "contact",
            org.contact_id(i),
            {"firstname": f"{org.key}{i}", org.phone_column: org.phone(i), "donotphone": False},
        )
    dataverse.interactions = TimedList()
    return dataverse


class TimedList(list[Any]):
    """The emulator's interaction log, with the wall-clock time each entry arrived (rolled back with it)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.time())
        super().append(item)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        del self.times[index]
        super().__delitem__(index)

    def clear(self) -> None:
        self.times.clear()
        super().clear()


class AutoDeliver:
    """Posts one signed ``delivered`` status callback per message the Twilio emulator accepted."""

    def __init__(self, twilio: Any, workers: int = 8) -> None:
        self._twilio = twilio
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._seen = 0
        self._posted = 0
        self._lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self._twilio.messages
            for message in messages[self._seen : len(messages)]:
                self._pool.submit(self._post, message.sid)
                self._seen += 1
            time.sleep(0.01)

    def _post(self, sid: str) -> None:
        try:
            status = self._twilio.send_status(sid, "delivered")[0]
        except OSError:
            status = 0
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self._posted += 1

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._posted >= len(self._twilio.messages):
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True)


def emulators_main(conn: Connection, counts: dict[str, int], limits: dict[str, Any]) -> None:
    """The emulators' process: one Dataverse emulator per org, the Twilio emulator, the auto-deliverer."""
    from devtools.emulators.twilio import TwilioEmulator

    dataverse = {}
    for key, n in counts.items():
        emulator = seed_org(BY_KEY[key], n)
        limit = limits[key]
        emulator.latency = limit.latency_ms / 1000
        emulator.limit(limit.requests, limit.window, limit.concurrent, limit.retry_after)
        dataverse[key] = emulator
    twilio = TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    deliverer = AutoDeliver(twilio)
    conn.send({"dataverse": {k: e.url for k, e in dataverse.items()}, "twilio": twilio.url})
    while True:
        command = conn.recv()
        if command == "idle":
            conn.send(deliverer.wait_idle(timeout=600))
        elif command == "stats":
            conn.send({k: _counts(e.interactions) for k, e in dataverse.items()} | {"sms": len(twilio.messages)})
        elif command == "detail":
            conn.send(
                {
                    "orgs": {k: _detail(e) for k, e in dataverse.items()},
                    "sms": [(m.to, m.from_, m.created_ts) for m in list(twilio.messages)],
                    "callback_statuses": dict(deliverer.statuses),
                }
            )
        elif command == "stop":
            deliverer.stop()
            twilio.stop()
            for emulator in dataverse.values():
                emulator.stop()
            conn.send(True)
            return


def _counts(interactions: Iterable[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for call in list(interactions):
        kind = str(call["ResponseType"])
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _detail(emulator: Any) -> dict[str, Any]:
    log: TimedList = emulator.interactions
    entries = list(zip(list(log), list(log.times), strict=False))
    return {
        "http_requests": emulator.http_request_count,
        "operations": emulator.operation_count,
        "throttled": emulator.throttled_count,
        "interactions": [(str(c["ActivityId"]), str(c["ResponseType"]), t) for c, t in entries],
    }
