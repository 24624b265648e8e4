"""Sending-policy settings (issue #14): quiet hours, the contact's time zone column, SMS segments.

A mixin of :class:`shared.settings.Settings` (the aliases are the public setting names). The shared send rate uses
the existing ``PROVIDER_MAX_PER_SECOND``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from shared.domain.quiet_hours import QuietWindow, parse_window, zone_named

_LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")


class PolicySettings(BaseModel):
    quiet_hours: str = Field(default="", validation_alias="QUIET_HOURS")
    quiet_hours_timezone: str = Field(default="UTC", validation_alias="QUIET_HOURS_TIMEZONE")
    contact_timezone_column: str | None = Field(default=None, validation_alias="CONTACT_TIMEZONE_COLUMN")
    sms_max_segments: int = Field(default=10, ge=1, le=100, validation_alias="SMS_MAX_SEGMENTS")
    sms_gsm_normalize: bool = Field(default=False, validation_alias="SMS_GSM_NORMALIZE")

    @field_validator("quiet_hours")
    @classmethod
    def _check_window(cls, value: str) -> str:
        parse_window(value)  # raises ValueError naming what is wrong
        return value.strip()

    @field_validator("quiet_hours_timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        value = (value or "").strip() or "UTC"
        if zone_named(value) is None:
            raise ValueError(f"'{value}' is not an IANA time zone name (e.g. America/New_York, Europe/Paris, UTC)")
        return value

    @field_validator("contact_timezone_column", mode="before")
    @classmethod
    def _check_column(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if not _LOGICAL_NAME.match(value):
                raise ValueError(f"'{value}' is not a Dataverse column logical name (lower case, e.g. cr123_timezone)")
        return value

    @property
    def quiet_window(self) -> QuietWindow | None:
        return parse_window(self.quiet_hours)
