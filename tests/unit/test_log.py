from __future__ import annotations

import logging

import pytest

from shared.log import log_event, mask_phone, scrub


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+447700900123", "+********0123"),
        ("whatsapp:+14155550100", "whatsapp:+*******0100"),
        ("123", "***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(raw: str | None, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_scrub_masks_numbers_inside_text() -> None:
    assert "7700900123" not in scrub("The 'To' number +44 7700 900123 is not valid")


def test_log_event_is_structured(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="channel")
    log_event("provider.send", activity_row="r1", journey_id="j1", reason="two words", skipped=None)
    record = caplog.records[-1]
    assert record.getMessage() == 'provider.send activity_row=r1 journey_id=j1 reason="two words"'
    assert record.custom_dimensions == {  # type: ignore[attr-defined]
        "event": "provider.send",
        "activity_row": "r1",
        "journey_id": "j1",
        "reason": "two words",
    }
