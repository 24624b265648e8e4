"""Not now, and not a failed attempt: the activity message is scheduled again at ``until`` (app/settlement.py).

Quiet hours, the shared send rate and (multi-org) an org's Dataverse throttling defer; none counts towards
``SEND_RETRY_MAX_ATTEMPTS``.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.errors import SendFailedTransient, TransientError


class Deferred(TransientError):
    """Raised before any state write (quiet hours; the send rate's budget is spent)."""

    def __init__(self, detail: str, until: datetime, reason: str) -> None:
        super().__init__(detail)
        self.until = until
        self.reason = reason  # quiet_hours | rate


class OverBudget(SendFailedTransient):
    """The provider was not called: the sender's shared budget is spent until ``until`` (retry-safe)."""

    def __init__(self, until: datetime) -> None:
        super().__init__("the sender's shared send rate is spent", retry_safe=True)
        self.until = until
        self.reason = "rate"


class Throttled(Deferred):
    """An org's Dataverse asked to wait longer than its client may hold a worker (multi-org, issue #15): its work is
    scheduled again when the wait is over, and the other orgs' work in the same invocation goes on."""

    def __init__(self, detail: str, until: datetime) -> None:
        super().__init__(detail, until, "dataverse_throttled")


DEFERRALS = (Deferred, OverBudget)
