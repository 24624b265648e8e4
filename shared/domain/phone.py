"""Phone number normalisation to E.164 (no third-party library: the rules we need are small and explicit)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
WHATSAPP_PREFIX = "whatsapp:"


def is_whatsapp(address: str | None) -> bool:
    return bool(address) and str(address).startswith(WHATSAPP_PREFIX)


def as_whatsapp(number: str) -> str:
    """The WhatsApp address of a number (unchanged when it is one already)."""
    return number if is_whatsapp(number) else WHATSAPP_PREFIX + number


def strip_channel_prefix(address: str) -> str:
    """The number behind a provider address: ``whatsapp:+447700900123`` → ``+447700900123`` (others unchanged)."""
    return address[len(WHATSAPP_PREFIX) :] if address.startswith(WHATSAPP_PREFIX) else address


def normalize_e164(raw: str | None, default_country_code: str | None = None) -> str | None:
    """Return ``+<digits>`` or None when the value cannot be a dialable international number.

    Accepts ``+44 7700 900123``, ``0044 7700 900123`` and, with a default country code, national numbers
    such as ``07700 900123`` (the trunk ``0`` is dropped). Extensions, letters and short codes are refused.
    """
    if raw is None:
        return None
    text = _SEPARATORS.sub("", raw.strip())
    if not text:
        return None
    if text.startswith("+"):
        candidate = text
    elif text.startswith("00"):
        candidate = "+" + text[2:]
    elif default_country_code and text.isdigit():
        candidate = "+" + default_country_code + text.lstrip("0")
    else:
        return None
    return candidate if _E164.match(candidate) else None
