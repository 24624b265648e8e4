"""``channel deadletter list | show | replay``: inspect dead-lettered messages and move them back once fixed.

Two kinds of dead letters are read:
- the broker's dead-letter sub-queue of the activity, callback and poison queues (``<queue>/$deadletterqueue``:
  ``MaxDeliveryCountExceeded`` and the like, reason in the broker's dead-letter properties);
- our poison queue (POISON_QUEUE_NAME): messages the app gave up on, with ``DeadLetterReason`` /
  ``DeadLetterErrorDescription`` / ``channel-source-queue`` application properties (see docs/operations.md).

``list`` and ``show`` only peek. ``replay`` receives the chosen messages (``--message-id``, or ``--all``), sends a
copy to their source queue (the broker DLQ's own queue, or ``channel-source-queue`` for the poison queue) without our
retry / poison properties so it starts fresh, and only then completes the dead-lettered one; when the send fails the
message is abandoned and stays where it was. Messages it had to lock but did not choose are abandoned unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from cli.common import (
    ORIGINAL_ID_PROPERTY,
    REPLAY_OF_PROPERTY,
    SOURCE_QUEUE_PROPERTY,
    SdkServiceBus,
    ServiceBusFactory,
    body_bytes,
    fresh_properties,
    plain_properties,
    read_environ,
)
from cli.progress import Progress
from shared.settings import ConfigurationError, Settings, load_settings

PEEK_PAGE = 100
RECEIVE_BATCH = 50
WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Source:
    """Where dead letters are read from: a queue's broker DLQ, or our poison queue."""

    label: str
    queue: str
    dead_letter_subqueue: bool


@dataclass
class Entry:
    source: Source
    sequence_number: int
    message_id: str
    enqueued: datetime | None
    reason: str
    description: str
    target: str | None  # where replay sends it
    delivery_count: int | None
    content_type: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    @property
    def original_id(self) -> str:
        return str(self.properties.get(ORIGINAL_ID_PROPERTY) or self.message_id or "")

    def matches(self, wanted: Iterable[str]) -> bool:
        ids = {self.message_id, self.original_id, f"{self.source.label}#{self.sequence_number}"}
        return any(w in ids for w in wanted)


@dataclass
class ReplaySummary:
    replayed: int = 0
    failed: int = 0
    skipped: int = 0
    not_found: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.not_found)


def sources(settings: Settings) -> list[Source]:
    queues = list(
        dict.fromkeys([settings.activity_queue_name, settings.callback_queue_name, settings.poison_queue_name])
    )
    found = [Source(f"{q}/$deadletterqueue", q, True) for q in queues]
    found.append(Source(settings.poison_queue_name, settings.poison_queue_name, False))
    return found


def to_entry(source: Source, message: Any, *, with_body: bool = True) -> Entry:
    props = plain_properties(message.application_properties)
    if source.dead_letter_subqueue:
        reason = message.dead_letter_reason or props.get("DeadLetterReason") or ""
        description = message.dead_letter_error_description or props.get("DeadLetterErrorDescription") or ""
        target: str | None = source.queue
    else:
        reason = props.get("DeadLetterReason") or ""
        description = props.get("DeadLetterErrorDescription") or ""
        target = str(props[SOURCE_QUEUE_PROPERTY]) if props.get(SOURCE_QUEUE_PROPERTY) else None
    return Entry(
        source=source,
        sequence_number=int(message.sequence_number),
        message_id=str(message.message_id or ""),
        enqueued=message.enqueued_time_utc,
        reason=str(reason),
        description=str(description),
        target=target,
        delivery_count=message.delivery_count,
        content_type=message.content_type,
        properties=props,
        body=body_bytes(message) if with_body else b"",
    )


def _receiver(client: Any, source: Source) -> Any:
    if source.dead_letter_subqueue:
        from azure.servicebus import ServiceBusSubQueue

        return client.get_queue_receiver(
            queue_name=source.queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=WAIT_SECONDS
        )
    return client.get_queue_receiver(queue_name=source.queue, max_wait_time=WAIT_SECONDS)


def peek(client: Any, source: Source, limit: int) -> list[Entry]:
    """Every message of ``source`` (up to ``limit``), without locking or removing anything."""
    entries: list[Entry] = []
    with _receiver(client, source) as receiver:
        next_sequence = 0
        while len(entries) < limit:
            page = receiver.peek_messages(
                max_message_count=min(PEEK_PAGE, limit - len(entries)), sequence_number=next_sequence
            )
            if not page:
                break
            entries.extend(to_entry(source, m) for m in page)
            next_sequence = max(int(m.sequence_number) for m in page) + 1
    return entries


def collect(client: Any, chosen: list[Source], limit: int, err: TextIO) -> list[Entry]:
    entries: list[Entry] = []
    for source in chosen:
        try:
            entries.extend(peek(client, source, limit))
        except Exception as exc:  # noqa: BLE001 - one unreadable source must not hide the others
            err.write(f"cannot read {source.label}: {exc.__class__.__name__}: {str(exc)[:200]}\n")
    return entries


# ------------------------------------------------------------------------------------------------- list / show
def render_list(entries: list[Entry], chosen: list[Source], out: TextIO) -> None:
    if entries:
        out.write(f"{'SOURCE':<32} {'SEQ':>6}  {'MESSAGE ID':<34} {'ENQUEUED (UTC)':<19}  {'REASON':<26} TARGET\n")
    for e in entries:
        enqueued = e.enqueued.strftime("%Y-%m-%d %H:%M:%S") if e.enqueued else "-"
        out.write(
            f"{e.source.label:<32} {e.sequence_number:>6}  {e.message_id[:34]:<34} {enqueued:<19}  "
            f"{(e.reason or '-')[:26]:<26} {e.target or '(unknown)'}\n"
        )
        if e.description:
            out.write(f"{'':<42}{e.description[:200]}\n")
    out.write("\n")
    for source in chosen:
        count = sum(1 for e in entries if e.source == source)
        out.write(f"  {source.label:<40}{count:>6} message(s)\n")


def render_show(entry: Entry, out: TextIO, max_body: int) -> None:
    out.write(f"source          {entry.source.label}\n")
    out.write(f"sequence number {entry.sequence_number}\n")
    out.write(f"message id      {entry.message_id}\n")
    if entry.original_id != entry.message_id:
        out.write(f"original id     {entry.original_id}\n")
    out.write(f"enqueued (UTC)  {entry.enqueued.isoformat() if entry.enqueued else '-'}\n")
    out.write(f"delivery count  {entry.delivery_count}\n")
    out.write(f"content type    {entry.content_type}\n")
    out.write(f"reason          {entry.reason or '-'}\n")
    out.write(f"description     {entry.description or '-'}\n")
    out.write(f"replays to      {entry.target or '(unknown: no ' + SOURCE_QUEUE_PROPERTY + ')'}\n")
    out.write("application properties:\n")
    for key in sorted(entry.properties):
        out.write(f"  {key} = {entry.properties[key]}\n")
    text = entry.body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    out.write(f"body ({len(entry.body)} bytes):\n")
    out.write(text[:max_body] + ("\n… (truncated)\n" if len(text) > max_body else "\n"))


# ------------------------------------------------------------------------------------------------- replay
def replay(
    client: Any,
    selected: list[Entry],
    *,
    progress: Progress,
    summary: ReplaySummary,
) -> None:
    """Move ``selected`` (peeked entries) back to their targets: send first, then complete; abandon on failure."""
    by_source: dict[Source, dict[int, Entry]] = {}
    for entry in selected:
        by_source.setdefault(entry.source, {})[entry.sequence_number] = entry
    with contextlib.ExitStack() as stack:
        senders: dict[str, Any] = {}

        def sender_for(queue: str) -> Any:
            if queue not in senders:
                senders[queue] = stack.enter_context(client.get_queue_sender(queue_name=queue))
            return senders[queue]

        for source, wanted in by_source.items():
            _replay_source(client, source, wanted, sender_for, progress, summary)


def _replay_source(
    client: Any,
    source: Source,
    wanted: dict[int, Entry],
    sender_for: Any,
    progress: Progress,
    summary: ReplaySummary,
) -> None:
    from azure.servicebus import ServiceBusMessage

    remaining = dict(wanted)
    held: list[Any] = []
    seen: set[int] = set()
    budget = len(wanted) + 500  # never wander through an endlessly growing queue
    with _receiver(client, source) as receiver:
        while remaining and budget > 0:
            batch = receiver.receive_messages(max_message_count=RECEIVE_BATCH, max_wait_time=WAIT_SECONDS)
            if not batch:
                break
            for message in batch:
                budget -= 1
                sequence = int(message.sequence_number)
                entry = remaining.pop(sequence, None)
                if entry is None:
                    if sequence not in seen:
                        held.append(message)  # not chosen: keep the lock until the end, then abandon unchanged
                    seen.add(sequence)
                    continue
                seen.add(sequence)
                current = to_entry(source, message)
                if not current.target:
                    held.append(message)
                    summary.skipped += 1
                    summary.lines.append(
                        f"skipped {source.label}#{sequence} {current.message_id}: no {SOURCE_QUEUE_PROPERTY} property"
                    )
                    progress.advance(note=f"skipped {current.message_id}")
                    continue
                properties: dict[str | bytes, Any] = {k: v for k, v in fresh_properties(current.properties).items()}
                properties[REPLAY_OF_PROPERTY] = current.original_id
                copy = ServiceBusMessage(
                    current.body,
                    content_type=current.content_type,
                    application_properties=properties,
                    message_id=_replay_id(current.original_id),
                    correlation_id=message.correlation_id,
                    subject=message.subject,
                )
                try:
                    sender_for(current.target).send_messages(copy)
                except Exception as exc:  # noqa: BLE001 - a failed send leaves the message where it was
                    with contextlib.suppress(Exception):
                        receiver.abandon_message(message)
                    summary.failed += 1
                    summary.lines.append(
                        f"failed  {source.label}#{sequence} {current.message_id} → {current.target}: "
                        f"{exc.__class__.__name__}: {str(exc)[:200]} (left in place)"
                    )
                    progress.advance(note=f"failed {current.message_id}")
                    continue
                try:
                    receiver.complete_message(message)
                except Exception as exc:  # noqa: BLE001 - resent already: report the leftover copy
                    summary.lines.append(
                        f"warning {source.label}#{sequence} {current.message_id} was resent to {current.target} but "
                        f"could not be removed ({exc.__class__.__name__}); the app's state makes the copy harmless"
                    )
                summary.replayed += 1
                summary.lines.append(f"replayed {source.label}#{sequence} {current.message_id} → {current.target}")
                progress.advance(note=f"→ {current.target}")
        for message in held:
            with contextlib.suppress(Exception):  # an expired lock releases it anyway
                receiver.abandon_message(message)
    for entry in remaining.values():
        summary.not_found += 1
        summary.lines.append(
            f"missing {source.label}#{entry.sequence_number} {entry.message_id}: no longer there or locked elsewhere"
        )
        progress.advance()


def _replay_id(original: str) -> str:
    """A new message id (duplicate detection must not swallow the replay) that still names the original."""
    suffix = uuid.uuid4().hex[:8]
    return f"{original[:100]}:replay-{suffix}" if original else uuid.uuid4().hex


# ------------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channel deadletter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--source",
        action="append",
        metavar="NAME",
        help="only this source: a queue name (its dead-letter sub-queue) or <queue>/$deadletterqueue or the poison "
        "queue name (repeatable; default: all)",
    )
    common.add_argument("--limit", type=int, default=1000, help="at most this many messages per source (default 1000)")
    common.add_argument("--settings", metavar="FILE", help="read settings from a local.settings.json")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,show,replay}")
    commands.add_parser(
        "list", parents=[common], help="list dead-lettered messages with their reasons", description="Peek only."
    )
    show = commands.add_parser("show", parents=[common], help="show one message in full", description="Peek only.")
    show.add_argument("--message-id", required=True, nargs="+", help="message id (or original id, or <source>#<seq>)")
    show.add_argument("--max-body", type=int, default=8000, help="print at most this many characters of the body")
    replay_parser = commands.add_parser(
        "replay",
        parents=[common],
        help="move chosen messages back to their source queue",
        description="Send a fresh copy to the source queue, then remove the dead-lettered message "
        "(abandon on failure).",
    )
    chosen = replay_parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--message-id", nargs="+", help="message ids (or original ids, or <source>#<seq>)")
    chosen.add_argument("--all", action="store_true", help="every message of the chosen sources")
    replay_parser.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")
    return parser


def _select_sources(all_sources: list[Source], names: list[str] | None) -> list[Source]:
    if not names:
        return all_sources
    chosen = []
    for source in all_sources:
        if source.label in names or (source.dead_letter_subqueue and source.queue in names):
            chosen.append(source)
    return chosen


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    servicebus: ServiceBusFactory | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings(dict(environ if environ is not None else read_environ(args.settings)))
    except ConfigurationError as exc:
        err.write(f"channel deadletter: {exc} (run `channel doctor` for the fixes)\n")
        return 2
    all_sources = sources(settings)
    chosen = _select_sources(all_sources, args.source)
    if not chosen:
        parser.error(f"--source: none of {args.source} is one of {[s.label for s in all_sources]}")
    client = (servicebus or SdkServiceBus(settings)).client()
    try:
        entries = collect(client, chosen, args.limit, err)
        if args.command == "list":
            render_list(entries, chosen, out)
            return 0
        if args.command == "show":
            found = [e for e in entries if e.matches(args.message_id)]
            for index, entry in enumerate(found):
                if index:
                    out.write("\n")
                render_show(entry, out, args.max_body)
            if not found:
                err.write(f"no dead-lettered message with id {' / '.join(args.message_id)}\n")
                return 1
            return 0
        selected = entries if args.all else [e for e in entries if e.matches(args.message_id)]
        summary = ReplaySummary()
        if args.message_id:
            missing = [m for m in args.message_id if not any(e.matches([m]) for e in entries)]
            summary.not_found += len(missing)
            summary.lines.extend(f"missing {m}: not found in {', '.join(s.label for s in chosen)}" for m in missing)
        with Progress(len(selected), "replaying", stream=err, enabled=False if args.quiet else None) as bar:
            replay(client, selected, progress=bar, summary=summary)
        for line in summary.lines:
            out.write(line + "\n")
        out.write(
            f"\nreplayed {summary.replayed}, failed {summary.failed}, skipped {summary.skipped}, "
            f"not found {summary.not_found}\n"
        )
        return 0 if summary.ok else 1
    finally:
        client.close()
