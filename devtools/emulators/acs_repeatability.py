"""Repeatable requests as ACS documents them (OASIS Repeatable Requests 1.0; learn.microsoft.com
``rest/api/communication/repeatable-requests``), per SMS recipient (``repeatabilityRequestId`` /
``repeatabilityFirstSent`` in ``smsRecipients[]``):

- the id must be a GUID and the first-sent time an IMF-fixdate (RFC 1123), else the recipient is rejected (400);
- a first-sent time outside the tracked duration (5 minutes) is rejected with 412: "potentially unsafe to re-execute";
- a new id inside the window is executed normally and its result remembered;
- a repeated id inside the window that matches the original request gets the original result (nothing executed);
  one that does not match (another recipient, text or first-sent time) is rejected (400).
- an original 5xx is not remembered: a repeat executes again.

[INFERRED] The documented table is written for request headers; the SMS API carries the same two values per recipient,
so the emulator applies the table per recipient and answers through the recipient's ``httpStatusCode``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

TRACKED_SECONDS = 300.0


@dataclass(frozen=True)
class _Seen:
    fingerprint: tuple[str, str, str]
    first_sent: float
    result: dict[str, Any]


def _rejected(to: str, status: int, message: str) -> dict[str, Any]:
    return {
        "to": to,
        "httpStatusCode": status,
        "successful": False,
        "errorMessage": message,
        "repeatabilityResult": "rejected",
        "messageId": None,
    }


class Repeatability:
    def __init__(self, tracked_seconds: float = TRACKED_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.tracked_seconds = tracked_seconds
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self.replays = 0  # repeats answered from the record (no new SMS)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self.replays = 0

    def check(self, to: str, text: str, request_id: Any, first_sent: Any) -> dict[str, Any] | None:
        """The answer for this recipient without executing it (an error or the original result), or None: execute
        it (and :meth:`remember` the result)."""
        if request_id is None and first_sent is None:
            return None  # not a repeatable request
        try:
            uuid.UUID(str(request_id))
            sent = parsedate_to_datetime(str(first_sent)).timestamp()
        except (ValueError, TypeError):
            return _rejected(to, 400, "repeatabilityRequestId must be a GUID and repeatabilityFirstSent a IMF-fixdate")
        now = self._clock()
        if not now - self.tracked_seconds <= sent <= now + 60:
            return _rejected(to, 412, "repeatabilityFirstSent is outside the tracked duration")
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v.first_sent >= now - self.tracked_seconds}
            seen = self._seen.get(str(request_id).lower())
            if seen is None:
                return None
            if seen.fingerprint != (to, text, str(first_sent)):
                return _rejected(to, 400, "the repeated request does not match the original")
            self.replays += 1
            return dict(seen.result)

    def remember(self, to: str, text: str, request_id: Any, first_sent: Any, result: dict[str, Any]) -> None:
        if request_id is None or int(result.get("httpStatusCode") or 0) >= 500:
            return
        sent = parsedate_to_datetime(str(first_sent)).timestamp()
        with self._lock:
            self._seen[str(request_id).lower()] = _Seen((to, text, str(first_sent)), sent, dict(result))
