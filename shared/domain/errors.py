"""Failure taxonomy. Every failure is exactly one of: poison (never retry), transient (retry), or a contract
violation surfaced with the upstream error code."""

from __future__ import annotations


class ChannelError(Exception):
    """Base class."""


class PoisonMessage(ChannelError):
    """Input that can never succeed: dead-letter it at once with ``reason`` (a short code) and ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(ChannelError):
    """Worth retrying later (throttling, 5xx, timeouts, a lease held by another worker)."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class DataverseError(ChannelError):
    """A non-retryable Dataverse answer, with Dataverse's own error code and message."""

    def __init__(self, status: int, code: str, message: str, operation: str) -> None:
        super().__init__(f"Dataverse {operation} failed: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.operation = operation


class NotFound(DataverseError):
    """The requested Dataverse row or metadata does not exist (HTTP 404)."""


class SendRejected(ChannelError):
    """The provider permanently refused this message (e.g. invalid or unsubscribed number)."""

    def __init__(self, code: str, detail: str, *, opted_out: bool = False) -> None:
        super().__init__(f"provider rejected the message: {code} {detail}")
        self.code = code
        self.detail = detail
        self.opted_out = opted_out


class SendFailedTransient(TransientError):
    """The provider could not take the message now.

    ``retry_safe`` is False when the provider may have accepted it anyway (a read timeout after the request was
    written): resending could text the contact twice, so the activity becomes *ambiguous* instead.
    """

    def __init__(self, detail: str, *, retry_safe: bool, retry_after: float | None = None) -> None:
        super().__init__(detail, retry_after)
        self.retry_safe = retry_safe


class CallbackRejected(ChannelError):
    """A callback request that must be refused (``status`` 400/401/403/404) before anything is recorded."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class UnknownOrganization(PoisonMessage):
    """Work for an org that is not registered, or disabled (MULTI_ORG, issue #15): poisoned after one attempt."""

    def __init__(self, org_id: str, detail: str, *, disabled: bool = False) -> None:
        super().__init__("unknown_organization", f"organization {org_id} {detail}" if org_id else detail)
        self.org_id = org_id
        self.disabled = disabled  # registered but disabled: work it had already accepted still completes
