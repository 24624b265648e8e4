"""The sending-policy settings mixin composes with pydantic-settings: read from the environment, validated, named."""

from __future__ import annotations

import pytest

from shared.settings import ConfigurationError, Settings, load_settings
from shared.settings_policy import PolicySettings
from tests.unit.test_settings import BASE


def test_defaults() -> None:
    s = load_settings(BASE)
    assert (s.quiet_hours, s.quiet_window, s.quiet_hours_timezone) == ("", None, "UTC")
    assert s.contact_timezone_column is None
    assert (s.sms_max_segments, s.sms_gsm_normalize) == (10, False)
    assert issubclass(Settings, PolicySettings)


def test_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUIET_HOURS", "21:00-08:00")
    monkeypatch.setenv("QUIET_HOURS_TIMEZONE", "America/New_York")
    monkeypatch.setenv("CONTACT_TIMEZONE_COLUMN", " cr123_timezone ")
    monkeypatch.setenv("SMS_MAX_SEGMENTS", "3")
    monkeypatch.setenv("SMS_GSM_NORMALIZE", "true")
    s = load_settings()
    assert str(s.quiet_window) == "21:00-08:00"
    assert s.quiet_hours_timezone == "America/New_York"
    assert s.contact_timezone_column == "cr123_timezone"
    assert (s.sms_max_segments, s.sms_gsm_normalize) == (3, True)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("QUIET_HOURS", "9pm-8am", "QUIET_HOURS: '9pm-8am' is not a window such as 21:00-08:00"),
        ("QUIET_HOURS", "21:00-21:00", "QUIET_HOURS: '21:00-21:00' starts and ends at the same time"),
        ("QUIET_HOURS_TIMEZONE", "EST5", "QUIET_HOURS_TIMEZONE: 'EST5' is not an IANA time zone name"),
        ("CONTACT_TIMEZONE_COLUMN", "Time Zone", "CONTACT_TIMEZONE_COLUMN: 'Time Zone' is not a Dataverse column"),
        ("SMS_MAX_SEGMENTS", "0", "SMS_MAX_SEGMENTS: Input should be greater than or equal to 1"),
        ("SMS_GSM_NORMALIZE", "maybe", "SMS_GSM_NORMALIZE: Input should be a valid boolean"),
    ],
)
def test_bad_values_name_the_setting(setting: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({**BASE, setting: value})
    assert message in str(raised.value)


def test_blank_values_mean_the_defaults() -> None:
    s = load_settings({**BASE, "QUIET_HOURS": " ", "QUIET_HOURS_TIMEZONE": "", "CONTACT_TIMEZONE_COLUMN": ""})
    assert (s.quiet_window, s.quiet_hours_timezone, s.contact_timezone_column) == (None, "UTC", None)
