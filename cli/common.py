"""Pieces the operator commands share: settings from the environment or ``local.settings.json``, the Service Bus
clients (behind a small factory so tests inject a double at the SDK boundary) and message-property helpers."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from shared.settings import Settings

# Properties our own retry / poison handling adds (shared/service.py); stripped when a message is replayed.
ATTEMPT_PROPERTY = "channel-attempt"
SOURCE_QUEUE_PROPERTY = "channel-source-queue"
ORIGINAL_ID_PROPERTY = "channel-original-message-id"
REPLAY_OF_PROPERTY = "channel-replay-of"
DEAD_LETTER_PREFIX = "DeadLetter"  # DeadLetterReason, DeadLetterErrorDescription (ours and the broker's)


class ServiceBusFactory(Protocol):
    """Creates the two azure-servicebus clients the commands use (fakes in tests have the same method names)."""

    def client(self) -> Any:
        """A ``ServiceBusClient``: ``get_queue_sender`` / ``get_queue_receiver``."""

    def admin(self) -> Any:
        """A ``ServiceBusAdministrationClient``: ``get_queue_runtime_properties``."""


class SdkServiceBus:
    """The real clients, from ``ServiceBusConnection`` or the identity-based namespace setting."""

    def __init__(self, settings: Settings) -> None:
        self._connection = settings.service_bus_connection
        self._namespace = settings.service_bus_namespace
        self._client_id = settings.service_bus_client_id or settings.azure_client_id
        self._credential: Any = None

    def _identity(self) -> Any:
        if self._credential is None:
            from shared.adapters.tokens import default_credential

            self._credential = default_credential(self._client_id)
        return self._credential

    def client(self) -> Any:
        from azure.servicebus import ServiceBusClient

        if self._connection:
            return ServiceBusClient.from_connection_string(self._connection)
        return ServiceBusClient(fully_qualified_namespace=str(self._namespace), credential=self._identity())

    def admin(self) -> Any:
        from azure.servicebus.management import ServiceBusAdministrationClient

        if self._connection:
            return ServiceBusAdministrationClient.from_connection_string(self._connection)
        return ServiceBusAdministrationClient(
            fully_qualified_namespace=str(self._namespace), credential=self._identity()
        )


def read_environ(settings_file: str | None) -> dict[str, str]:
    """The process environment, overlaid on the ``Values`` of a ``local.settings.json`` when one is given."""
    environ: dict[str, str] = {}
    if settings_file:
        document = json.loads(Path(settings_file).read_text(encoding="utf-8"))
        values = document.get("Values", {}) if isinstance(document, dict) else {}
        environ.update({str(k): str(v) for k, v in values.items() if v is not None})
    environ.update(os.environ)
    return environ


def text(value: Any) -> str:
    """Received application properties come back with ``bytes`` keys and string values (AMQP)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def plain_properties(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    """Application properties with ``str`` keys and string values decoded; other primitives kept as they are."""
    out: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        out[text(key)] = text(value) if isinstance(value, bytes | bytearray) else value
    return out


def body_bytes(message: Any) -> bytes:
    """The body of a received message (a generator of sections for AMQP data bodies)."""
    body = message.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(bytes(part) if not isinstance(part, str) else part.encode("utf-8") for part in body)


def fresh_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Drop our retry / poison bookkeeping so a replayed message starts from attempt 1."""
    dropped = {ATTEMPT_PROPERTY, SOURCE_QUEUE_PROPERTY, ORIGINAL_ID_PROPERTY, REPLAY_OF_PROPERTY}
    return {k: v for k, v in properties.items() if k not in dropped and not k.startswith(DEAD_LETTER_PREFIX)}
