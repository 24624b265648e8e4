"""Sending policy end to end (issue #14): the real functions, the Dataverse and Twilio emulators, Azurite.

Quiet hours defer with a scheduled copy and record nothing; the time zone code is resolved through the emulator's
timezonedefinitions; the compliance re-check runs at send time; segments fail a text over SMS_MAX_SEGMENTS; GSM
look-alikes are normalised; a spent shared budget defers; Twilio 20429 / 30001 are transient.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared import bootstrap
from shared.adapters.shared_rate import ROW, partition_for
from shared.adapters.table_store import TableStore
from shared.app.settlement import DEFERRED_PROPERTY
from shared.domain.quiet_hours import SPREAD_SECONDS
from shared.settings import load_settings
from tests.helpers import ACTIVITY_ROW, ACTIVITY_TABLE, CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE, ROW_ID, activity_message
from tests.integration.conftest import ACTIVITY_QUEUE, SENDER, Channel

TOKYO = ZoneInfo("Asia/Tokyo")
TOKYO_CODE = 235  # timezonedefinitions: Tokyo Standard Time


def reconfigure(channel: Channel, **settings: str) -> None:
    env = {**channel.env, **settings}
    channel.host.environ.update(env)
    bootstrap.install(bootstrap.build_service(load_settings(env), queue=channel.host.queue))


def window_around_now(zone: ZoneInfo) -> str:
    local = datetime.now(zone)
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def window_not_now(zone: ZoneInfo) -> str:
    local = datetime.now(zone)
    start, end = local + timedelta(hours=2), local + timedelta(hours=4)
    return f"{start:%H:%M}-{end:%H:%M}"


def scheduled(channel: Channel) -> list:  # type: ignore[type-arg]
    return [m for m in channel.host.queue.on(ACTIVITY_QUEUE) if m.scheduled_at is not None]


def state(channel: Channel) -> TableStore:
    return TableStore.from_settings(
        table_name=channel.env["STATE_TABLE_NAME"],
        connection_string=channel.env["AzureWebJobsStorage"],
        table_service_uri=None,
        account_name=None,
    )


@pytest.fixture
def zoned(channel: Channel) -> Channel:
    channel.dataverse.add_columns("contact", ["cr123_timezone"])
    row = channel.dataverse.get_row("contact", CONTACT_ID) or {}
    channel.dataverse.add_row("contact", CONTACT_ID, {**row, "cr123_timezone": TOKYO_CODE})
    return channel


def test_inside_quiet_hours_nothing_is_sent_or_recorded_until_the_window_ends(zoned: Channel) -> None:
    channel = zoned
    reconfigure(channel, QUIET_HOURS=window_around_now(TOKYO), CONTACT_TIMEZONE_COLUMN="cr123_timezone")
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == [] and channel.interactions == []
    assert state(channel).get(ROW_ID, "activity") is None  # nothing recorded for a deferred activity
    [copy] = scheduled(channel)
    end = datetime.now(TOKYO).replace(second=0, microsecond=0) + timedelta(hours=1)
    assert end - timedelta(minutes=1) <= copy.scheduled_at <= end + timedelta(seconds=SPREAD_SECONDS + 60)
    assert copy.application_properties[DEFERRED_PROPERTY] == copy.scheduled_at.isoformat()
    assert copy.application_properties.get("channel-attempt") is None  # not an attempt
    timezone_reads = [r for r in channel.dataverse.requests if "/timezonedefinitions" in r.path]
    assert len(timezone_reads) == 1

    # the original redelivered inside the window: deferred again, never sent
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == [] and len(scheduled(channel)) == 2
    assert len([r for r in channel.dataverse.requests if "/timezonedefinitions" in r.path]) == 1  # cached

    # the window has ended: both copies arrive, one text is sent, the other is a duplicate
    reconfigure(channel, QUIET_HOURS=window_not_now(TOKYO), CONTACT_TIMEZONE_COLUMN="cr123_timezone")
    assert channel.host.pump() == 2
    assert len(channel.twilio.messages) == 1
    assert channel.response_types() == ["sent"]


def test_the_contacts_zone_outside_the_window_sends_at_once(zoned: Channel) -> None:
    reconfigure(zoned, QUIET_HOURS=window_not_now(TOKYO), CONTACT_TIMEZONE_COLUMN="cr123_timezone")
    assert zoned.deliver(activity_message())
    assert len(zoned.twilio.messages) == 1 and scheduled(zoned) == []


def test_the_compliance_check_runs_again_when_the_deferred_copy_arrives(zoned: Channel) -> None:
    channel = zoned
    reconfigure(channel, QUIET_HOURS=window_around_now(TOKYO), CONTACT_TIMEZONE_COLUMN="cr123_timezone")
    assert channel.deliver(activity_message())
    row = channel.dataverse.get_row("contact", CONTACT_ID) or {}
    channel.dataverse.add_row("contact", CONTACT_ID, {**row, "donotphone": True})  # opted out overnight
    reconfigure(channel, QUIET_HOURS="", CONTACT_TIMEZONE_COLUMN="cr123_timezone")
    assert channel.host.pump() == 1
    assert channel.twilio.messages == [] and channel.interactions == []
    found = state(channel).get(ROW_ID, "activity")
    assert found is not None and found[0]["send_status"] == "suppressed"


def test_an_unknown_zone_falls_back_to_quiet_hours_timezone(channel: Channel) -> None:
    channel.dataverse.add_columns("contact", ["cr123_timezone"])
    row = channel.dataverse.get_row("contact", CONTACT_ID) or {}
    channel.dataverse.add_row("contact", CONTACT_ID, {**row, "cr123_timezone": "Mars/Olympus"})
    reconfigure(
        channel,
        QUIET_HOURS=window_around_now(TOKYO),
        QUIET_HOURS_TIMEZONE="Asia/Tokyo",
        CONTACT_TIMEZONE_COLUMN="cr123_timezone",
    )
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == [] and len(scheduled(channel)) == 1


def test_a_text_over_sms_max_segments_fails_naming_the_limit(channel: Channel) -> None:
    channel.dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Long", "cr123_body": "€" * 81})  # 2 parts
    reconfigure(channel, SMS_MAX_SEGMENTS="1")
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == []
    assert channel.response_types() == ["failed"]
    found = state(channel).get(ROW_ID, "activity")
    assert found is not None and "SMS_MAX_SEGMENTS=1" in str(found[0]["last_error"])


def test_gsm_look_alikes_are_replaced_when_asked(channel: Channel) -> None:
    channel.dataverse.add_row(
        MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Quotes", "cr123_body": "It\u2019s \u201cready\u201d \u2013 go\u2026"}
    )
    reconfigure(channel, SMS_GSM_NORMALIZE="true")
    assert channel.deliver(activity_message())
    assert [m.body for m in channel.twilio.messages] == ['It\'s "ready" - go...']


def test_a_spent_shared_budget_defers_before_any_write(channel: Channel) -> None:
    reconfigure(channel, PROVIDER_MAX_PER_SECOND="1")
    table = state(channel)
    partition = partition_for("twilio", SENDER)
    table.upsert(partition, ROW, {"next_at": time.time() + 120})  # other instances took the next two minutes
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == []
    assert table.get(ROW_ID, "activity") is None
    [copy] = scheduled(channel)
    assert copy.scheduled_at > datetime.now(UTC) + timedelta(seconds=100)


def test_sends_take_slots_of_the_shared_budget(channel: Channel) -> None:
    reconfigure(channel, PROVIDER_MAX_PER_SECOND="5")
    assert channel.deliver(activity_message())
    found = state(channel).get(partition_for("twilio", SENDER), ROW)
    assert found is not None and found[0]["next_at"] > time.time() - 5
    assert len(channel.twilio.messages) == 1


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (400, 30001)])
def test_twilio_rate_errors_are_transient_never_failed(channel: Channel, status: int, code: int) -> None:
    channel.twilio.inject_error("POST", r".*/Messages\.json$", status=status, code=code, message="slow down")
    assert channel.deliver(activity_message())
    assert channel.interactions == []
    found = state(channel).get(ROW_ID, "activity")
    assert found is not None and found[0]["send_status"] == "claimed"
    [retry] = channel.host.queue.on(ACTIVITY_QUEUE)
    assert retry.application_properties["channel-attempt"] == 2
    assert channel.host.pump() == 1
    assert len(channel.twilio.messages) == 1 and channel.response_types() == ["sent"]


def test_a_queue_overflow_report_sends_again_later_and_is_never_failed(channel: Channel) -> None:
    channel.dataverse.add_row(ACTIVITY_TABLE, ROW_ID, ACTIVITY_ROW)
    assert channel.deliver(activity_message())
    first = channel.twilio.messages[0].sid
    code, _ = channel.twilio.send_status(first, "failed", error_code=30001)
    assert code == 200
    channel.twilio.send_status(first, "failed", error_code=30001)  # a duplicated report changes nothing more
    assert channel.response_types() == ["sent"]  # not failed
    found = state(channel).get(ROW_ID, "activity")
    assert found is not None and found[0]["send_status"] == "claimed"
    [again] = scheduled(channel)
    assert again.application_properties["channel-attempt"] == 2
    assert again.scheduled_at > datetime.now(UTC) + timedelta(seconds=20)  # SEND_RETRY_BASE_SECONDS backoff
    assert channel.host.pump() == 1
    assert len(channel.twilio.messages) == 2
    second = channel.twilio.messages[1].sid
    channel.twilio.send_status(second, "delivered")
    assert channel.response_types() == ["sent", "delivered"]  # `sent` once, across both sends
