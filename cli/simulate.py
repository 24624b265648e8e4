"""``channel simulate``: a whole journey run locally through the real handlers, on embedded defaults.

Starts Azurite (state table), the Dataverse emulator (seeded org), the loopback SMS gateway and a local stand-in
for the Functions host; posts real-format activity messages through the Service Bus trigger exactly like the
worker would; the gateway fires signed delivery callbacks over HTTP to the callback trigger; two contacts reply.
Prints each step (or, with ``--quiet``, nothing but the result), a live progress bar on stderr when it is a terminal,
then the interactions the journey received by response type and the timings: activity processing per message and
callback latency (p50 / p95). With ``--quiet-hours`` (the default ``auto`` picks a window around the current time in
Tokyo) contacts carry a time zone (IANA names and Dataverse codes) and those inside the window are deferred; the
summary shows the deferred sends and the encoding and segment count of every text sent.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import azure.functions as func

from cli.jsonlog import JsonLinesHandler
from cli.progress import Progress
from cli.report.analysis import percentile
from cli.simulate_links import TEXT_WITH_LINK, click_some
from devtools import azurite
from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.loopback_provider import LoopbackGateway
from devtools.host import LocalHost
from devtools.messages import ActivitySpec, activity_message
from shared.app.settlement import DEFERRED_PROPERTY
from shared.domain import segments

MESSAGE_TABLE = "cr123_smsmessage"
MESSAGE_ID = "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51"
JOURNEY_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01"
ITERATION_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02"
OUR_NUMBER = "+15005550006"
TOKEN = "local-dataverse-token"  # noqa: S105 - loopback emulator only
FIRST_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Zoë", "Ken", "Margaret", "Tim"]  # ë: UCS-2


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


ZONES: list[str | int | None] = ["Asia/Tokyo", 85, 4, None, "Europe/Paris"]  # IANA names and Dataverse codes
ZONE_COLUMN = "cr123_timezone"


def auto_quiet_hours(now: datetime | None = None) -> str:
    """A window from an hour before to two hours after the current time in Tokyo (where contacts 0, 5, ... live)."""
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo("Asia/Tokyo"))
    return f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=2):%H:%M}"


def seed(dataverse: DataverseEmulator, people: list[Contact], text: str | None = None) -> None:
    dataverse.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
    dataverse.add_row(
        MESSAGE_TABLE,
        MESSAGE_ID,
        {
            "cr123_name": "Spring offer",
            "cr123_body": text or "Hi {{contact.firstname}}, your spring offer is ready. Reply YES!",
        },
    )
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", ["firstname", "mobilephone", "donotphone", ZONE_COLUMN])
    for i, person in enumerate(people):
        dataverse.add_row(
            "contact",
            person.contact_id,
            {
                "firstname": FIRST_NAMES[i % len(FIRST_NAMES)],
                "mobilephone": person.phone,
                "donotphone": person.opted_out,
                ZONE_COLUMN: ZONES[i % len(ZONES)],
            },
        )


class StepPrinter(logging.Handler):
    def __init__(self, stream: TextIO, started: float, bar: Progress | None = None) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.started = started
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        if self.bar is not None:
            self.bar.clear()
        self.stream.write(f"  +{time.monotonic() - self.started:7.3f}s  {record.getMessage()}\n")
        if self.bar is not None:
            self.stream.flush()
            self.bar.render()


@dataclass
class TimedHost(LocalHost):
    """The local host, timing each callback the gateway posts (per activity row, from ``?activity=``)."""

    callback_seconds: list[float] = field(default_factory=list)
    callback_done: dict[str, float] = field(default_factory=dict)
    _timing_lock: threading.Lock = field(default_factory=threading.Lock)

    def call_http(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> func.HttpResponse:
        started = time.monotonic()
        response = super().call_http(method, url, headers=headers, body=body)
        finished = time.monotonic()
        activity = parse_qs(urlsplit(url).query).get("activity")
        with self._timing_lock:
            self.callback_seconds.append(finished - started)
            if activity:
                self.callback_done[activity[0]] = finished
        return response


def _timing_row(label: str, values: Sequence[float]) -> str:
    if not values:
        return f"  {label:<34}{'-':>8}{'-':>10}{'-':>10}{'-':>10}\n"
    p50, p95, top = percentile(values, 50), percentile(values, 95), max(values)
    return f"  {label:<34}{len(values):>8}{p50 * 1000:>9.1f}ms{p95 * 1000:>8.1f}ms{top * 1000:>8.1f}ms\n"


def run(
    contacts: int,
    replies: bool,
    verbose: bool,
    out: TextIO,
    *,
    progress: bool | None = False,
    progress_stream: TextIO | None = None,
    log_file: TextIO | None = None,
    link_tracking: bool = False,
    quiet_hours: str | None = None,
) -> dict[str, int]:
    """Run the journey; returns the interactions by response type (``keyword:<word>`` for replies).

    ``progress``: draw a live bar on ``progress_stream`` (stderr); ``None`` means "when it is a terminal".
    ``log_file``: every structured log line as JSON lines (what ``channel report`` reads). ``link_tracking``: the
    text carries a link, sent as a short link; some contacts click it.
    ``quiet_hours``: ``QUIET_HOURS`` for the run (``auto``: see :func:`auto_quiet_hours`); None: off.
    """
    from shared import bootstrap
    from shared.settings import load_settings

    started = time.monotonic()
    out.write(f"Starting Azurite, the Dataverse emulator and the loopback SMS gateway ({contacts} contacts)\n")
    storage = azurite.start()
    dataverse = DataverseEmulator(token=TOKEN)
    gateway = LoopbackGateway(key="local-loopback-key").start()
    host = TimedHost()
    server, base_url = host.serve_http()
    people = contacts_for(contacts)
    seed(dataverse, people, TEXT_WITH_LINK if link_tracking else None)
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
        "LINK_TRACKING": "true" if link_tracking else "false",
    }
    if quiet_hours is not None:
        window = auto_quiet_hours() if quiet_hours == "auto" else quiet_hours
        env.update({"QUIET_HOURS": window, "CONTACT_TIMEZONE_COLUMN": ZONE_COLUMN})
        out.write(f"Quiet hours {window} in each contact's zone ({ZONE_COLUMN}: IANA names and Dataverse codes)\n")
    host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=host.queue))
    logger = logging.getLogger("channel")
    bar = Progress(contacts, "activities", stream=progress_stream or sys.stderr, enabled=progress)
    printer = StepPrinter(out, started, bar if verbose else None)
    logger.addHandler(printer)
    json_lines = JsonLinesHandler(log_file) if log_file is not None else None
    if json_lines is not None:
        logger.addHandler(json_lines)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not verbose:
        printer.setLevel(logging.WARNING)
    try:
        out.write(f"Callback route: {base_url}/api/callbacks/loopback   Dataverse: {dataverse.api_url}\n\n")
        t0 = time.monotonic()
        activity_seconds: list[float] = []
        activity_started: dict[str, float] = {}
        with bar:
            for person in people:
                spec = ActivitySpec(person.contact_id, JOURNEY_ID, ITERATION_ID, MESSAGE_TABLE, MESSAGE_ID)
                body, props = activity_message(spec)
                begun = time.monotonic()
                activity_started[spec.row_id] = begun
                host.deliver("activities", body, application_properties=props)
                activity_seconds.append(time.monotonic() - begun)
                bar.advance(note=f"callbacks {len(host.callback_seconds)}")
        send_seconds = time.monotonic() - t0
        gateway.wait_idle()
        clicks = click_some([m.body for m in gateway.messages]) if link_tracking else 0
        if replies and contacts >= 2:
            inbound = f"{base_url}/api/callbacks/loopback"
            texted = {m.to for m in gateway.messages}  # not the deferred ones
            reachable = [p for p in people if p.phone in texted and not p.opted_out]
            gateway.reply(inbound, str(reachable[0].phone), OUR_NUMBER, "YES please")
            if len(reachable) > 1:
                gateway.reply(inbound, str(reachable[1].phone), OUR_NUMBER, "STOP")
        host.pump(honour_schedule=quiet_hours is not None)  # deferred copies wait for their time
        total = time.monotonic() - started
    finally:
        logger.removeHandler(printer)
        if json_lines is not None:
            logger.removeHandler(json_lines)
        bootstrap.install(None)
        server.shutdown()
        gateway.stop()
        dataverse.stop()
        storage.stop()

    counts = Counter(
        f"keyword:{c['TriggerKeyword']}" if c["ResponseType"] == "keyword" else str(c["ResponseType"])
        for c in dataverse.interactions
    )
    round_trips = [
        host.callback_done[row] - begun for row, begun in activity_started.items() if row in host.callback_done
    ]
    out.write("\nInteractions the journey received (msdyncrm_CustomChannelActivityCreateInteraction):\n")
    out.write(f"  {'response type':<18}{'count':>6}\n")
    for kind in ("sent", "delivered", "opened", "clicked", "failed"):
        out.write(f"  {kind:<18}{counts.get(kind, 0):>6}\n")
    for kind, count in sorted(counts.items()):
        if kind.startswith("keyword:"):
            out.write(f"  {kind:<18}{count:>6}\n")
    _policy_summary(out, gateway, host)
    out.write(f"\nTimings\n  {'':<34}{'count':>8}{'p50':>11}{'p95':>10}{'max':>10}\n")
    out.write(_timing_row("activity processing (per message)", activity_seconds))
    out.write(_timing_row("callback handling (per request)", host.callback_seconds))
    out.write(_timing_row("activity start → delivery report", round_trips))
    out.write(
        f"\n  contacts {contacts}, SMS sent {len(gateway.messages)}, poison {len(host.queue.on('activities-poison'))}, "
        f"Dataverse HTTP requests {dataverse.http_request_count}\n"
    )
    if link_tracking and gateway.messages:
        out.write(f"  a sent text: {gateway.messages[0].body}\n")
        out.write(f"  link clicks {clicks} (one repeated, one preview: not counted)\n")
    out.write(
        f"  activity processing {send_seconds:.2f}s ({contacts / max(send_seconds, 1e-9):.1f}/s), total {total:.2f}s\n"
    )
    return dict(counts)


def _policy_summary(out: TextIO, gateway: LoopbackGateway, host: LocalHost) -> None:
    """Deferred sends (scheduled copies on the activity queue) and the encoding / segments of every text sent."""
    deferred = [m for m in host.queue.on("activities") if DEFERRED_PROPERTY in m.application_properties]
    out.write(f"\nSending policy\n  deferred by quiet hours{len(deferred):>8}")
    due = sorted(m.scheduled_at for m in deferred if m.scheduled_at)
    if due:
        out.write(f"   (scheduled {due[0]:%H:%M:%S} to {due[-1]:%H:%M:%S} UTC)")
    out.write("\n")
    shapes = Counter(
        (shape.encoding, shape.segments) for shape in map(segments.count, (m.body for m in gateway.messages))
    )
    for (encoding, parts), count in sorted(shapes.items()):
        label = f"{encoding}, {parts} segment{'s' if parts > 1 else ''}"
        out.write(f"  {label:<24}{count:>8}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="channel simulate", description=__doc__)
    parser.add_argument("--contacts", type=int, default=10, help="contacts entering the journey (default 10)")
    parser.add_argument("--no-replies", action="store_true", help="skip the simulated YES / STOP replies")
    parser.add_argument(
        "--quiet", action="store_true", help="print only warnings and the final tables (no steps, no progress bar)"
    )
    parser.add_argument("--log-file", help="also write every structured log line to this file as JSON lines")
    parser.add_argument("--link-tracking", action="store_true", help="LINK_TRACKING=true; some contacts click")
    parser.add_argument(
        "--quiet-hours",
        default="auto",
        metavar="HH:MM-HH:MM",
        help="QUIET_HOURS for the run (default auto: a window around now in Tokyo, where some contacts live; "
        "off: none)",
    )
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    progress = False if args.quiet else None
    quiet = None if args.quiet_hours == "off" else args.quiet_hours
    with contextlib.ExitStack() as stack:
        log_file = stack.enter_context(open(args.log_file, "w", encoding="utf-8")) if args.log_file else None
        run(
            args.contacts,
            not args.no_replies,
            not args.quiet,
            sys.stdout,
            progress=progress,
            log_file=log_file,
            link_tracking=args.link_tracking,
            quiet_hours=quiet,
        )
    return 0
