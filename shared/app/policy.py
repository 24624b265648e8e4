"""Sending policy steps of the outbound-marketing send (issue #14): quiet hours and segments.

- :func:`quiet_until`: whether the contact is inside ``QUIET_HOURS`` in their zone now, and until when. The caller
  raises :class:`Deferred` before any state write: nothing is recorded and nothing reported for a deferred activity.
  A redelivery of the original inside the window is deferred again by the same rule (the instant is stable per
  activity); after the window the exactly-once record makes any second copy a duplicate.
- :func:`prepare_text`: GSM look-alike normalisation (``SMS_GSM_NORMALIZE``), then encoding and segment count;
  over ``SMS_MAX_SEGMENTS`` is a reason to fail without sending. WhatsApp senders are not segmented, and neither is
  a template send (the provider sends the approved template; the body column is not what reaches the contact).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.domain import segments as seg
from shared.domain.deferral import Deferred
from shared.domain.quiet_hours import QuietWindow, deferred_until
from shared.domain.timezones import ResolvedZone, StandardNameOf, resolve
from shared.log import log_event


@dataclass(frozen=True)
class SendingPolicy:
    quiet_window: QuietWindow | None = None
    default_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    timezone_column: str | None = None  # CONTACT_TIMEZONE_COLUMN
    standard_name_of: StandardNameOf | None = None  # Dataverse timezonecode → standardname (cached adapter)
    max_segments: int = 10
    gsm_normalize: bool = False
    whatsapp: bool = False  # all sends are WhatsApp (CHANNEL_PROVIDER=whatsapp, TWILIO_FROM=whatsapp:…): unsegmented
    rate_check: Callable[[], datetime | None] | None = None  # the shared send rate: spent until (no I/O)


def contact_zone(policy: SendingPolicy, value: object) -> ResolvedZone:
    lookup = policy.standard_name_of or (lambda code: None)
    return resolve(value, policy.default_zone, lookup)


def quiet_until(policy: SendingPolicy, now: datetime, zone_value: object, key: str, ids: dict[str, str]) -> None:
    """Raise :class:`Deferred` when ``now`` is inside the quiet window in the contact's zone."""
    window = policy.quiet_window
    if window is None:
        return
    zone = contact_zone(policy, zone_value)
    if zone.source == "unknown":
        log_event("quiet_hours.unknown_zone", logging.WARNING, detail=zone.detail, fallback=str(zone.zone), **ids)
    until = deferred_until(window, now, zone.zone, key)
    if until is not None:
        raise Deferred(f"quiet hours {window} in {zone.zone}", until, "quiet_hours")


@dataclass(frozen=True)
class PreparedText:
    text: str
    info: seg.Segments | None  # None: not segmented (WhatsApp, or a template send)
    too_long: str | None = None  # the reason to fail without sending
    template: bool = False  # a template is sent, not this text


def prepare_text(policy: SendingPolicy, text: str, *, template: bool = False) -> PreparedText:
    if template:
        return PreparedText(text, None, template=True)
    if policy.whatsapp:
        return PreparedText(text, None)
    if policy.gsm_normalize:
        text = seg.normalize_gsm(text)
    info = seg.count(text)
    if info.segments > policy.max_segments:
        reason = f"message is {info.segments} {info.encoding} segments, over SMS_MAX_SEGMENTS={policy.max_segments}"
        return PreparedText(text, info, reason)
    return PreparedText(text, info)


def segment_fields(prepared: PreparedText) -> tuple[str, int | None]:
    """What every send logs about its text (never the text): its encoding and segment count."""
    if prepared.info is None:
        return ("template" if prepared.template else "whatsapp"), None
    return prepared.info.encoding, prepared.info.segments


def before_send(
    policy: SendingPolicy,
    now: datetime,
    key: str,
    zone_value: object,
    text: str,
    ids: dict[str, str],
    *,
    template: bool = False,
) -> PreparedText:
    """Quiet hours and a spent send rate raise :class:`Deferred` (before any write); then the text's segments."""
    quiet_until(policy, now, zone_value, key, ids)
    spent_until = policy.rate_check() if policy.rate_check else None
    if spent_until is not None:
        raise Deferred("the sender's shared send rate is spent", spent_until, "rate")
    return prepare_text(policy, text, template=template)
