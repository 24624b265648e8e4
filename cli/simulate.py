"""``channel simulate``: a whole journey run locally through the real handlers, on embedded defaults.

Starts Azurite (state table), the Dataverse emulator (seeded org), the loopback SMS gateway and a local stand-in
for the Functions host; posts real-format activity messages through the Service Bus trigger exactly like the
worker would; the gateway fires signed delivery callbacks over HTTP to the callback trigger; two contacts reply.
Prints each step, then the interactions the journey received, by response type.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TextIO

from devtools import azurite
from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.loopback_provider import LoopbackGateway
from devtools.host import LocalHost
from devtools.messages import ActivitySpec, activity_message

MESSAGE_TABLE = "cr123_smsmessage"
MESSAGE_ID = "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51"
JOURNEY_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01"
ITERATION_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02"
OUR_NUMBER = "+15005550006"
TOKEN = "local-dataverse-token"  # noqa: S105 - loopback emulator only
FIRST_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tim"]


@dataclass
class Contact:
    contact_id: str
    phone: str | None
    opted_out: bool


def contacts_for(n: int) -> list[Contact]:
    people = []
    for i in range(n):
        opted_out = i % 10 == 7  # some contacts opted out after entering the journey
        phone = None if i % 10 == 8 else f"+1415555{i:04d}"
        people.append(Contact(str(uuid.UUID(int=0xC0A80101_0000_4000_8000_000000000000 + i)), phone, opted_out))
    return people


def seed(dataverse: DataverseEmulator, people: list[Contact]) -> None:
    dataverse.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
    dataverse.add_row(
        MESSAGE_TABLE,
        MESSAGE_ID,
        {
            "cr123_name": "Spring offer",
            "cr123_body": "Hi {{contact.firstname}}, your spring offer is ready. Reply YES!",
        },
    )
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", ["firstname", "mobilephone", "donotphone"])
    for i, person in enumerate(people):
        dataverse.add_row(
            "contact",
            person.contact_id,
            {
                "firstname": FIRST_NAMES[i % len(FIRST_NAMES)],
                "mobilephone": person.phone,
                "donotphone": person.opted_out,
            },
        )


class StepPrinter(logging.Handler):
    def __init__(self, stream: TextIO, started: float) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.started = started

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(f"  +{time.monotonic() - self.started:7.3f}s  {record.getMessage()}\n")


def run(contacts: int, replies: bool, verbose: bool, out: TextIO) -> dict[str, int]:
    from shared import bootstrap
    from shared.settings import load_settings

    started = time.monotonic()
    out.write(f"Starting Azurite, the Dataverse emulator and the loopback SMS gateway ({contacts} contacts)\n")
    storage = azurite.start()
    dataverse = DataverseEmulator(token=TOKEN)
    gateway = LoopbackGateway(key="local-loopback-key").start()
    host = LocalHost()
    server, base_url = host.serve_http()
    people = contacts_for(contacts)
    seed(dataverse, people)
    env = {
        "DATAVERSE_URL": dataverse.url,
        "DATAVERSE_STATIC_TOKEN": TOKEN,
        "AzureWebJobsStorage": storage.connection_string,
        "STATE_TABLE_NAME": "channelstate",
        "ServiceBusConnection": "Endpoint=sb://local.invalid/;SharedAccessKeyName=local;SharedAccessKey=local",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "loopback",
        "LOOPBACK_PROVIDER_URL": gateway.url,
        "LOOPBACK_SIGNING_KEY": "local-loopback-key",
        "CALLBACK_BASE_URL": base_url,
        "MESSAGE_BODY_COLUMN": "cr123_body",
    }
    host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=host.queue))
    logger = logging.getLogger("channel")
    printer = StepPrinter(out, started)
    logger.addHandler(printer)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not verbose:
        printer.setLevel(logging.WARNING)
    try:
        out.write(f"Callback route: {base_url}/api/callbacks/loopback   Dataverse: {dataverse.api_url}\n\n")
        t0 = time.monotonic()
        for person in people:
            spec = ActivitySpec(person.contact_id, JOURNEY_ID, ITERATION_ID, MESSAGE_TABLE, MESSAGE_ID)
            body, props = activity_message(spec)
            host.deliver("activities", body, application_properties=props)
        send_seconds = time.monotonic() - t0
        gateway.wait_idle()
        if replies and contacts >= 2:
            inbound = f"{base_url}/api/callbacks/loopback"
            reachable = [p for p in people if p.phone and not p.opted_out]
            gateway.reply(inbound, str(reachable[0].phone), OUR_NUMBER, "YES please")
            if len(reachable) > 1:
                gateway.reply(inbound, str(reachable[1].phone), OUR_NUMBER, "STOP")
        host.pump()
        total = time.monotonic() - started
    finally:
        logger.removeHandler(printer)
        bootstrap.install(None)
        server.shutdown()
        gateway.stop()
        dataverse.stop()
        storage.stop()

    counts = Counter(
        f"keyword:{c['TriggerKeyword']}" if c["ResponseType"] == "keyword" else str(c["ResponseType"])
        for c in dataverse.interactions
    )
    out.write("\nInteractions the journey received (msdyncrm_CustomChannelActivityCreateInteraction):\n")
    for kind in ("sent", "delivered", "opened", "failed"):
        out.write(f"  {kind:<18}{counts.get(kind, 0):>6}\n")
    for kind, count in sorted(counts.items()):
        if kind.startswith("keyword:"):
            out.write(f"  {kind:<18}{count:>6}\n")
    out.write(
        f"\n  contacts {contacts}, SMS sent {len(gateway.messages)}, poison {len(host.queue.on('activities-poison'))}, "
        f"Dataverse HTTP requests {dataverse.http_request_count}\n"
        f"  activity processing {send_seconds:.2f}s ({contacts / max(send_seconds, 1e-9):.1f}/s), total {total:.2f}s\n"
    )
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="channel simulate", description=__doc__)
    parser.add_argument("--contacts", type=int, default=10, help="contacts entering the journey (default 10)")
    parser.add_argument("--no-replies", action="store_true", help="skip the simulated YES / STOP replies")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and the final table")
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    run(args.contacts, not args.no_replies, not args.quiet, sys.stdout)
    return 0
