"""Service Bus publisher (poison queue, scheduled retries, queued callbacks) with azure-servicebus.

Uses the same connection as the triggers: the ``ServiceBusConnection`` connection string, or identity-based
``ServiceBusConnection__fullyQualifiedNamespace`` with the app's credential. One client per process; senders are
cached per queue.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any


class ServiceBusPublisher:
    def __init__(self, client_factory: Any) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._senders: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, *, connection_string: str | None, namespace: str | None, credential: Any = None
    ) -> ServiceBusPublisher:
        def factory() -> Any:
            from azure.servicebus import ServiceBusClient

            if connection_string:
                return ServiceBusClient.from_connection_string(connection_string)
            return ServiceBusClient(fully_qualified_namespace=str(namespace), credential=credential)

        return cls(factory)

    def _sender(self, queue: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            sender = self._senders.get(queue)
            if sender is None:
                sender = self._client.get_queue_sender(queue_name=queue)
                self._senders[queue] = sender
            return sender

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
        from azure.servicebus import ServiceBusMessage

        message = ServiceBusMessage(
            body,
            content_type=content_type,
            application_properties={str(k): _amqp_value(v) for k, v in (application_properties or {}).items()},
            message_id=message_id,
            scheduled_enqueue_time_utc=scheduled_at,
        )
        sender = self._sender(queue)
        try:
            sender.send_messages(message)
        except Exception:
            with self._lock:  # drop a broken link so the next call reconnects
                self._senders.pop(queue, None)
            raise

    def close(self) -> None:
        with self._lock:
            for sender in self._senders.values():
                sender.close()
            if self._client is not None:
                self._client.close()
            self._senders.clear()
            self._client = None


def _amqp_value(value: Any) -> Any:
    """Application properties must be AMQP primitives."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
