"""Reconciliation end to end (issue #13): the real function app through the worker's Service Bus converter (batch
trigger), the Twilio emulator over HTTP (its Messages list), the Dataverse emulator and Azurite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import bootstrap
from shared.domain.reconcile import KIND_PROPERTY
from tests.helpers import ROW_ID, activity_message
from tests.integration.conftest import PHONE, Channel


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The app's clock moves on (RECONCILE_AFTER_SECONDS after the lease), the emulators' does not need to."""
    monkeypatch.setattr(bootstrap.SystemClock, "now", lambda self: datetime.now(UTC) + timedelta(seconds=seconds))


def _orders(channel: Channel) -> list[object]:
    return [m for m in channel.host.queue.messages if m.application_properties.get(KIND_PROPERTY) == "reconcile"]


def test_a_send_twilio_took_is_found_in_its_list_and_not_sent_again(
    channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel.twilio.lose_answers = 1  # Twilio creates the message, the connection closes before the answer
    assert channel.deliver(activity_message())
    assert len(channel.twilio.messages) == 1 and channel.response_types() == [] and len(_orders(channel)) == 1
    _later(monkeypatch, 900)
    assert channel.host.pump() == 1
    assert len(channel.twilio.messages) == 1  # found, not resent
    assert channel.response_types() == ["sent"]
    assert any(r.method == "GET" and "To=%2B447700900123" in r.target for r in channel.twilio.requests)
    sms = channel.twilio.messages[0]
    record = channel.service.deps.records.activities.get(ROW_ID)
    assert record is not None and record.provider_message_id == sms.sid and sms.to == PHONE


def test_a_send_twilio_never_had_is_sent_once(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    channel.twilio.inject_error("POST", r"Messages\.json", status=504, code=20504, message="Gateway timeout")
    assert channel.deliver(activity_message())
    assert channel.twilio.messages == [] and len(_orders(channel)) == 1
    _later(monkeypatch, 900)
    channel.host.pump()
    assert len(channel.twilio.messages) == 1 and channel.response_types() == ["sent"]
