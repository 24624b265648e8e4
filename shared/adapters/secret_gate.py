"""A provider whose secret setting held an unresolved Key Vault reference: fail closed, naming the setting.

Wraps the configured provider. Callbacks that would be verified with the missing secret are refused with 503 before
anything is read; sends that would be signed with it fail as transient (nothing was sent, so the activity is
retried and reaches the poison queue with this reason if Key Vault never resolves). The wrapped provider never
sees the literal reference text: it is built with an empty value that the gate keeps it from using.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.domain import reconcile
from shared.domain.errors import CallbackRejected, SendFailedTransient, TransientError
from shared.domain.models import InboundHttpRequest, ProviderCallback, SendRequest, SendResult
from shared.domain.reconcile import Lookup, SentQuery
from shared.log import log_event
from shared.ports import Provider

_WHY = "holds an unresolved Key Vault reference"


class SecretGate:
    def __init__(self, inner: Provider, *, send_setting: str | None, callback_setting: str | None) -> None:
        self.name = inner.name
        self._inner = inner
        self._send_setting = send_setting
        self._callback_setting = callback_setting
        self.replay_window = inner.replay_window

    def lookup(self, query: SentQuery) -> Lookup:
        if self._send_setting:  # the lookup authenticates with the send credential
            return reconcile.unknown(f"{self._send_setting} {_WHY}: the provider cannot be asked")
        return self._inner.lookup(query)

    def send(self, request: SendRequest) -> SendResult:
        if self._send_setting:
            log_event("provider.secret_unavailable", logging.ERROR, provider=self.name, setting=self._send_setting)
            raise SendFailedTransient(f"{self._send_setting} {_WHY}: nothing sent", retry_safe=True)
        return self._inner.send(request)

    def handle_callback(self, request: InboundHttpRequest) -> ProviderCallback:
        if self._callback_setting:
            log_event("callback.secret_unavailable", logging.ERROR, provider=self.name, setting=self._callback_setting)
            raise CallbackRejected(503, f"{self._callback_setting} {_WHY}; callbacks are refused until it resolves")
        return self._inner.handle_callback(request)


def gate(provider: Provider, unresolved: tuple[str, ...]) -> Provider:
    """``provider`` behind a :class:`SecretGate` when one of its secrets is in ``unresolved``, else unchanged."""
    send = {"twilio": "TWILIO_AUTH_TOKEN", "acs": "ACS_ACCESS_KEY", "loopback": "LOOPBACK_SIGNING_KEY"}
    verify = {"twilio": "TWILIO_AUTH_TOKEN", "acs": "ACS_EVENTGRID_SECRET", "loopback": "LOOPBACK_SIGNING_KEY"}
    send["whatsapp"], verify["whatsapp"] = "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET"  # issue #17
    send_setting = send.get(provider.name) if send.get(provider.name) in unresolved else None
    callback_setting = verify.get(provider.name) if verify.get(provider.name) in unresolved else None
    if send_setting is None and callback_setting is None:
        return provider
    return SecretGate(provider, send_setting=send_setting, callback_setting=callback_setting)


class UnavailableQueue:
    """``ServiceBusConnection`` held an unresolved reference (and no identity-based namespace is set): every publish
    fails as transient, naming the setting. Paths that need no queue (inline callbacks, RTJ outbound) keep working."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def publish(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        application_properties: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        log_event("queue.secret_unavailable", logging.ERROR, setting=self.setting, queue=queue)
        raise TransientError(f"{self.setting} {_WHY}: cannot publish to {queue}")
