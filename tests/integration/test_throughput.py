"""Batch processing keeps every exactly-once guarantee while cutting Dataverse requests per activity."""

from __future__ import annotations

import uuid

import pytest

from shared import bootstrap
from shared.settings import load_settings
from tests.helpers import activity_message, fixture_bytes
from tests.integration.conftest import ACTIVITY_QUEUE, Channel


def contacts(channel: Channel, n: int) -> list[tuple[str, str]]:
    """n (row id, contact id) pairs with distinct phone numbers."""
    pairs = []
    for i in range(n):
        contact = str(uuid.UUID(int=0xC0FFEE00_0000_4000_8000_000000000000 + i))
        channel.dataverse.add_row("contact", contact, {"firstname": f"C{i}", "mobilephone": f"+1415555{i:04d}"})
        pairs.append((str(uuid.uuid4()), contact))
    return pairs


def batch(pairs: list[tuple[str, str]]) -> list[tuple[bytes, str | None, dict[str, object], str]]:
    return [
        (activity_message(row_id=row, contact_id=contact, activity_id=row), "application/json", {}, f"m-{row}")
        for row, contact in pairs
    ]


@pytest.fixture
def queued(channel: Channel) -> Channel:
    """The same channel with CALLBACK_PROCESSING=queued (the default in production)."""
    env = {**channel.env, "CALLBACK_PROCESSING": "queued"}
    channel.service = bootstrap.build_service(load_settings(env), queue=channel.host.queue)
    bootstrap.install(channel.service)
    return channel


def test_a_batch_reads_contacts_together_and_reports_with_batch(channel: Channel) -> None:
    pairs = contacts(channel, 40)
    channel.dataverse.reset()
    assert channel.host.deliver_batch(ACTIVITY_QUEUE, batch(pairs))
    assert len(channel.twilio.messages) == 40
    assert channel.response_types() == ["sent"] * 40
    assert sorted(str(i["ActivityId"]) for i in channel.interactions) == sorted(row for row, _ in pairs)
    paths = [r.path for r in channel.dataverse.requests]
    assert paths.count("/api/data/v9.2/$batch") == 1
    assert paths.count("/api/data/v9.2/contacts") == 1  # one In query for 40 contacts
    assert channel.dataverse.http_request_count <= 5  # + metadata (2) + the message row (1)


def test_partial_batch_failure_retries_only_the_failed_operation(channel: Channel) -> None:
    pairs = contacts(channel, 10)
    channel.dataverse.inject_error("POST", "CreateInteraction", status=503, code="0x80040216", message="busy", times=1)
    assert channel.host.deliver_batch(ACTIVITY_QUEUE, batch(pairs))
    assert channel.response_types() == ["sent"] * 10  # the 503 operation was retried alone, nothing doubled


def test_a_permanent_failure_reschedules_that_message_only(channel: Channel) -> None:
    pairs = contacts(channel, 6)
    channel.dataverse.inject_error("POST", "CreateInteraction", status=400, code="0x80040203", message="bad", times=1)
    assert channel.host.deliver_batch(ACTIVITY_QUEUE, batch(pairs))
    assert len(channel.interactions) == 5
    retries = channel.host.queue.on(ACTIVITY_QUEUE)
    assert len(retries) == 1
    channel.host.pump()
    assert len(channel.twilio.messages) == 6  # the retry sent nothing again
    assert channel.response_types() == ["sent"] * 6


def test_duplicates_and_poison_inside_one_batch(channel: Channel) -> None:
    pairs = contacts(channel, 3)
    messages = batch(pairs)
    messages.append(messages[0])  # the same activity twice in the batch
    messages.append((fixture_bytes("dataverse", "activity_create.xml"), "application/xml", {}, "m-xml"))
    assert channel.host.deliver_batch(ACTIVITY_QUEUE, messages)
    assert len(channel.twilio.messages) == 3
    assert channel.response_types() == ["sent"] * 3
    (poison,) = channel.host.queue.on("activities-poison")
    assert poison.application_properties["DeadLetterReason"] == "xml_format"


def test_queued_callbacks_are_acknowledged_at_once_and_reported_in_batches(queued: Channel) -> None:
    pairs = contacts(queued, 30)
    queued.host.deliver_batch(ACTIVITY_QUEUE, batch(pairs))
    queued.dataverse.reset()
    for sms in queued.twilio.messages:
        for status in ("sent", "delivered", "delivered"):  # duplicated reports too
            assert queued.twilio.send_status(sms.sid, status)[0] == 200
    assert queued.dataverse.http_request_count == 0  # nothing reached Dataverse yet: all queued
    assert queued.host.pump() == 90
    assert [i["ResponseType"] for i in queued.dataverse.interactions].count("delivered") == 30
    assert queued.dataverse.http_request_count == 1  # one $batch for 30 delivered interactions


def test_queued_callbacks_survive_a_dataverse_outage(queued: Channel) -> None:
    pairs = contacts(queued, 4)
    queued.host.deliver_batch(ACTIVITY_QUEUE, batch(pairs))
    for sms in queued.twilio.messages:
        queued.twilio.send_status(sms.sid, "delivered")
    queued.dataverse.inject_error("POST", r"\$batch", status=503, code="0x80040216", message="down", times=None)
    queued.dataverse.inject_error(
        "POST", "CreateInteraction", status=503, code="0x80040216", message="down", times=None
    )
    queued.host.pump(honour_schedule=True)
    retries = queued.host.queue.on("callbacks")
    assert len(retries) == 4 and all(m.scheduled_at for m in retries)  # rescheduled with backoff, not lost
    queued.dataverse.clear_faults()
    queued.host.pump()  # later: the scheduled retries arrive
    assert sorted(i["ResponseType"] for i in queued.dataverse.interactions) == ["delivered"] * 4 + ["sent"] * 4
