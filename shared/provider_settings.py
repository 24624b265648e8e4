"""Provider settings checks (Twilio, ACS), run by :class:`shared.settings.Settings` after the fields are read.

Each function returns one message per problem, naming the setting, as the settings model reports them.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Protocol

from shared.domain.phone import strip_channel_prefix

_TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_TWILIO_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_URL_SAFE_SECRET = re.compile(r"^[A-Za-z0-9\-_.~]+$")
MIN_EVENTGRID_SECRET_LENGTH = 24


class ProviderFields(Protocol):
    """The fields of :class:`shared.settings.Settings` these checks read (no import back into the settings)."""

    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from: str | None
    twilio_messaging_service_sid: str | None
    acs_endpoint: str | None
    acs_from: str | None
    acs_access_key: str | None
    acs_eventgrid_secret: str | None

    def is_unresolved(self, setting: str) -> bool: ...


def twilio_errors(s: ProviderFields) -> list[str]:
    errors: list[str] = []
    if not s.twilio_account_sid:
        errors.append("TWILIO_ACCOUNT_SID: required when CHANNEL_PROVIDER=twilio")
    elif not _TWILIO_ACCOUNT_SID.match(s.twilio_account_sid):
        errors.append("TWILIO_ACCOUNT_SID: must look like AC followed by 32 hex characters")
    if not (s.twilio_auth_token or s.is_unresolved("TWILIO_AUTH_TOKEN")):
        errors.append("TWILIO_AUTH_TOKEN: required when CHANNEL_PROVIDER=twilio")
    if bool(s.twilio_from) == bool(s.twilio_messaging_service_sid):
        errors.append("TWILIO_FROM / TWILIO_MESSAGING_SERVICE_SID: set exactly one of them")
    if s.twilio_messaging_service_sid and not _TWILIO_SERVICE_SID.match(s.twilio_messaging_service_sid):
        errors.append("TWILIO_MESSAGING_SERVICE_SID: must look like MG followed by 32 hex characters")
    if s.twilio_from:
        sender = s.twilio_from
        number = strip_channel_prefix(sender)
        if not (_E164.match(number) or (sender == number and _ALPHANUMERIC_SENDER.match(sender))):
            errors.append(
                "TWILIO_FROM: must be an E.164 number (+14155550100), an alphanumeric sender "
                "(max 11 characters) or whatsapp:+E164"
            )
    return errors


def acs_errors(s: ProviderFields) -> list[str]:
    errors: list[str] = []
    if not s.acs_endpoint:
        errors.append("ACS_ENDPOINT: required when CHANNEL_PROVIDER=acs (https://<resource>.communication.azure.com)")
    if not s.acs_from:
        errors.append("ACS_FROM: required when CHANNEL_PROVIDER=acs")
    elif not (_E164.match(s.acs_from) or _ALPHANUMERIC_SENDER.match(s.acs_from)):
        errors.append("ACS_FROM: must be an E.164 number (+18005550100) or an alphanumeric sender (max 11 characters)")
    if s.acs_access_key:
        try:
            base64.b64decode(s.acs_access_key, validate=True)
        except (binascii.Error, ValueError):
            errors.append("ACS_ACCESS_KEY: must be the resource's base64 access key (or unset to use Entra ID)")
    secret = s.acs_eventgrid_secret
    if not secret and s.is_unresolved("ACS_EVENTGRID_SECRET"):
        pass  # the callback endpoint answers 503 until Key Vault resolves it
    elif not secret:
        errors.append(
            "ACS_EVENTGRID_SECRET: required when CHANNEL_PROVIDER=acs (the Event Grid subscription's "
            "X-Channel-Secret delivery attribute)"
        )
    elif len(secret) < MIN_EVENTGRID_SECRET_LENGTH or not _URL_SAFE_SECRET.match(secret):
        errors.append(
            f"ACS_EVENTGRID_SECRET: must be at least {MIN_EVENTGRID_SECRET_LENGTH} characters of "
            "A-Z a-z 0-9 - _ . ~ (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return errors
