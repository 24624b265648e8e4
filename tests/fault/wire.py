"""The fault run over the real wire: the function app through ``devtools.host.LocalHost`` (the worker's Service Bus
converter, PeekLock, batch trigger, HTTP trigger), the Dataverse and Twilio loopback emulators over HTTP with
injected 429 / 503 / 5xx, and Azure Table Storage (Azurite) for the state. Smaller N than the in-memory engine:
every step is a real HTTP or Table call. Worker crashes are covered by the in-memory engine (a crash inside a
ThreadingHTTPServer handler is not something the stand-in host can model faithfully)."""

from __future__ import annotations

import logging
import random
import re
import uuid
from collections import Counter
from typing import Any

from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.twilio import TwilioEmulator
from devtools.host import LocalHost
from shared import bootstrap
from shared.settings import load_settings
from tests.fault.engine import TEMPLATE, CaptureHandler
from tests.helpers import MESSAGE_ID, MESSAGE_TABLE, activity_message

TWILIO_SID = "AC" + "e" * 32
TWILIO_TOKEN = "wire-fault-twilio-token-Hq7"
DATAVERSE_TOKEN = "wire-fault-dataverse-token-K2p"
SENDER = "+15005550006"


def run_wire(n: int, seed: int, connection_string: str) -> dict[str, Any]:
    rng = random.Random(seed)
    dataverse = DataverseEmulator(token=DATAVERSE_TOKEN)
    twilio = TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    host = LocalHost()
    server, callback_base = host.serve_http()
    capture = CaptureHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    logging.getLogger("channel").setLevel(logging.INFO)
    env = {
        "DATAVERSE_URL": dataverse.url,
        "DATAVERSE_STATIC_TOKEN": DATAVERSE_TOKEN,
        "AzureWebJobsStorage": connection_string,
        "STATE_TABLE_NAME": "fault" + uuid.uuid4().hex[:12],
        "ServiceBusConnection": "Endpoint=sb://unused.servicebus.windows.net/;SharedAccessKeyName=x;SharedAccessKey=y",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "twilio",
        "CALLBACK_BASE_URL": callback_base,
        "MESSAGE_BODY_COLUMN": "cr123_body",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_API_BASE_URL": twilio.url,
        "DATAVERSE_MAX_RETRIES": "2",
        "SEND_RETRY_BASE_SECONDS": "0",
        "CALLBACK_PROCESSING": "queued",
    }
    host.environ.update(env)
    saved_env = dict(**__import__("os").environ)
    __import__("os").environ.update(env)
    phones: dict[str, str] = {}
    codes: set[str] = set()
    rows: dict[str, str] = {}  # activity id -> row id
    counters: Counter[str] = Counter()
    try:
        service = bootstrap.build_service(load_settings(env), queue=host.queue)
        bootstrap.install(service)
        dataverse.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
        dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Wire fault run", "cr123_body": TEMPLATE})
        dataverse.add_entity("contact", "contacts", "contactid")
        dataverse.add_columns("contact", ["mobilephone", "donotphone", "firstname", "cr123_code"])
        messages: list[tuple[bytes, str | None, dict[str, Any], str]] = []
        for index in range(n):
            row_id, activity_id, contact_id = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3))
            phone = f"+1444{index:07d}"
            code = f"{rng.randrange(10**8, 10**9)}"
            phones[row_id], rows[activity_id] = phone, row_id
            codes.add(code)
            dataverse.add_row(
                "contact",
                contact_id,
                {"mobilephone": phone, "donotphone": False, "firstname": f"C{index}", "cr123_code": code},
            )
            body = activity_message(row_id=row_id, contact_id=contact_id, activity_id=activity_id)
            messages.append((body, "application/json", {}, f"w{index}"))
            if rng.random() < 0.10:
                messages.append((body, "application/json", {}, f"w{index}-dup"))
                counters["duplicate messages injected"] += 1
        rng.shuffle(messages)
        for start in range(0, len(messages), 8):
            if rng.random() < 0.2:
                kind = rng.choice(["429", "503"])
                counters[f"dataverse {kind} injected"] += 1
                headers = {"Retry-After": "0"} if kind == "429" else None
                dataverse.inject_error(
                    "*", ".", status=int(kind), code="0x80072322", message="injected", headers=headers, times=1
                )
            if rng.random() < 0.1:
                counters["twilio 503 injected"] += 1
                twilio.inject_error("POST", "Messages.json", status=503, code=20500, message="injected", times=1)
            host.deliver_batch("activities", messages[start : start + 8])
        host.pump()  # scheduled retries (SEND_RETRY_BASE_SECONDS=0)
        statuses: list[tuple[str, str]] = []
        for message in twilio.messages:
            final = rng.choice(["delivered", "delivered", "delivered", "undelivered"])
            sequence = ["sent", final] + (["delivered"] if final == "delivered" and rng.random() < 0.1 else [])
            statuses.extend((message.sid, status) for status in sequence)
        rng.shuffle(statuses)  # reordered (and some duplicated) delivery reports
        answered: dict[str, set[str]] = {}
        for sid, status in statuses:
            if rng.random() < 0.05:
                counters["dataverse 503 injected (callbacks)"] += 1
                dataverse.inject_error("*", ".", status=503, code="0x80040216", message="injected", times=1)
            code_, _ = twilio.send_status(sid, status, error_code=30003 if status == "undelivered" else None)
            counters[f"callback HTTP {code_}"] += 1
            if code_ == 200:
                answered.setdefault(sid, set()).add(status)
        host.pump()
        by_activity: dict[str, Counter[str]] = {}
        for call in dataverse.interactions:
            by_activity.setdefault(str(call["ActivityId"]), Counter())[str(call["ResponseType"])] += 1
        sends_by_row = Counter(re.sub(r".*activity=", "", m.status_callback or "") for m in twilio.messages)
        duplicate_sends = sum(c - 1 for c in sends_by_row.values() if c > 1)
        duplicate_interactions = sum(c - 1 for counts in by_activity.values() for c in counts.values() if c > 1)
        sid_row = {m.sid: re.sub(r".*activity=", "", m.status_callback or "") for m in twilio.messages}
        lost_activities = sum(1 for activity_id in rows if by_activity.get(activity_id, Counter())["sent"] < 1)
        lost_callbacks = 0
        row_activity = {row: activity for activity, row in rows.items()}
        for sid, got in answered.items():
            counts = by_activity.get(row_activity[sid_row[sid]], Counter())
            if "delivered" in got and counts["delivered"] < 1:
                lost_callbacks += 1
            if "undelivered" in got and "delivered" not in got and counts["failed"] < 1:
                lost_callbacks += 1
        digits = re.compile(r"\d{7,}")
        secret_digits = {p.lstrip("+") for p in phones.values()} | codes
        leaks = [
            line[:200]
            for line in capture.lines
            if any(d in secret_digits for d in digits.findall(line))
            or TWILIO_TOKEN in line
            or DATAVERSE_TOKEN in line
            or "your code is" in line
        ]
        by_type = Counter(str(call["ResponseType"]) for call in dataverse.interactions)
        return {
            "activities": n,
            "provider sends": len(twilio.messages),
            "duplicate sends": duplicate_sends,
            "interactions by type": dict(sorted(by_type.items())),
            "duplicate interactions": duplicate_interactions,
            "lost activities": lost_activities,
            "lost callbacks": lost_callbacks,
            "dead-lettered by Service Bus": len(host.dead_letters),
            "poisoned": len(host.queue.on("activities-poison")),
            "log records": len(capture.lines),
            "log leaks": len(leaks),
            "log leak samples": leaks[:5],
            "faults injected": dict(counters),
        }
    finally:
        bootstrap.install(None)
        root.removeHandler(capture)
        root.setLevel(old_level)
        import os

        os.environ.clear()
        os.environ.update(saved_env)
        server.shutdown()
        server.server_close()
        twilio.stop()
        dataverse.stop()
