"""The composition root's identities: Dataverse through the one token selection, and each Azure client with the
identity its own ``__clientId`` setting names (not whichever credential Dataverse happened to build first)."""

from __future__ import annotations

from typing import Any

import pytest

from shared import bootstrap
from shared.adapters import tokens
from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.adapters.servicebus import ServiceBusPublisher
from shared.adapters.table_store import TableStore
from shared.settings import load_settings
from tests.unit.test_tokens import RecordingCredential

IDENTITY_SETTINGS = {
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "AZURE_CLIENT_ID": "app-identity",
    "AzureWebJobsStorage__accountName": "stcontoso",
    "AzureWebJobsStorage__clientId": "storage-identity",
    "ServiceBusConnection__fullyQualifiedNamespace": "sb-contoso.servicebus.windows.net",
    "ServiceBusConnection__clientId": "servicebus-identity",
    "ACTIVITY_QUEUE_NAME": "activities",
    "CHANNEL_PROVIDER": "loopback",
    "LOOPBACK_PROVIDER_URL": "http://127.0.0.1:9",
    "LOOPBACK_SIGNING_KEY": "k",
    "CALLBACK_BASE_URL": "https://channel.example.com",
    "MESSAGE_BODY_COLUMN": "cr123_body",
}


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The credential the state store and the Service Bus publisher were built with (in-memory doubles returned)."""
    found: dict[str, Any] = {}

    def table_store(**kwargs: Any) -> MemoryStore:
        found["storage"] = kwargs["credential"]
        return MemoryStore()

    def publisher(**kwargs: Any) -> MemoryQueue:
        found["servicebus"] = kwargs["credential"]
        return MemoryQueue()

    monkeypatch.setattr(TableStore, "from_settings", table_store)
    monkeypatch.setattr(ServiceBusPublisher, "from_settings", publisher)
    return found


def test_each_client_gets_the_identity_its_setting_names(monkeypatch: pytest.MonkeyPatch, used: dict[str, Any]) -> None:
    identities: dict[int, str | None] = {}

    def default_credential(client_id: str | None) -> RecordingCredential:
        credential = RecordingCredential()
        identities[id(credential)] = client_id
        return credential

    monkeypatch.setattr(tokens, "default_credential", default_credential)
    monkeypatch.setattr(bootstrap, "default_credential", default_credential)
    bootstrap.build_service(load_settings(IDENTITY_SETTINGS))
    assert identities[id(used["storage"])] == "storage-identity"
    assert identities[id(used["servicebus"])] == "servicebus-identity"
    assert "app-identity" in identities.values()  # Dataverse: DefaultAzureCredential with AZURE_CLIENT_ID


def test_an_injected_credential_serves_every_client(used: dict[str, Any]) -> None:
    credential = RecordingCredential("t")
    bootstrap.build_service(load_settings(IDENTITY_SETTINGS), credential=credential)
    assert used == {"storage": credential, "servicebus": credential}
