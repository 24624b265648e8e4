"""End-to-end fixtures: the real function app driven like the worker does, against loopback emulators of
Dataverse and Twilio and a real Table Storage (Azurite). Only Service Bus is in-process (no emulator runs here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.emulators.dataverse import DataverseEmulator
from devtools.emulators.twilio import TwilioEmulator
from devtools.host import LocalHost
from shared import bootstrap
from shared.service import ChannelService
from shared.settings import load_settings
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "integration-auth-token"
SENDER = "+15005550006"
PHONE = "+447700900123"
ACTIVITY_QUEUE = "activities"
RTJ_SECRET = "rtj-integration-secret-0123456789"


@dataclass
class Channel:
    host: LocalHost
    dataverse: DataverseEmulator
    twilio: TwilioEmulator
    service: ChannelService
    callback_base: str
    env: dict[str, str]

    def deliver(self, body: bytes, **kwargs: object) -> bool:
        return self.host.deliver(ACTIVITY_QUEUE, body, **kwargs)  # type: ignore[arg-type]

    @property
    def interactions(self) -> list[dict[str, object]]:
        return list(self.dataverse.interactions)

    def response_types(self) -> list[str]:
        out = []
        for call in self.dataverse.interactions:
            kind = str(call["ResponseType"])
            out.append(f"{kind}:{call['TriggerKeyword']}" if kind == "keyword" else kind)
        return out


def seed(
    dataverse: DataverseEmulator, body: str = "Hi {{contact.firstname}}, your code is {{contact.cr123_code}}"
) -> None:
    dataverse.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
    dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_name": "Spring", "cr123_body": body})
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", ["mobilephone", "donotphone", "firstname", "cr123_code", "nickname"])
    dataverse.add_row(
        "contact", CONTACT_ID, {"firstname": "Avery", "mobilephone": "+44 7700 900123", "donotphone": False}
    )
    dataverse.add_entity(
        "msdyncrm_customerjourneycustomchannelactivity",
        "msdyncrm_customerjourneycustomchannelactivities",
        "msdyncrm_customerjourneycustomchannelactivityid",
    )


@pytest.fixture
def channel(azurite_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Channel]:
    dataverse = DataverseEmulator(token="integration-dataverse-token")
    twilio = TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    seed(dataverse)
    host = LocalHost()
    server, callback_base = host.serve_http()
    env = {
        "DATAVERSE_URL": dataverse.url,
        "DATAVERSE_STATIC_TOKEN": "integration-dataverse-token",
        "AzureWebJobsStorage": azurite_connection_string,
        "STATE_TABLE_NAME": "state" + uuid.uuid4().hex[:12],
        "ServiceBusConnection": "Endpoint=sb://unused.servicebus.windows.net/;SharedAccessKeyName=x;SharedAccessKey=y",
        "ACTIVITY_QUEUE_NAME": ACTIVITY_QUEUE,
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "twilio",
        "CALLBACK_BASE_URL": callback_base,
        "MESSAGE_BODY_COLUMN": "cr123_body",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_API_BASE_URL": twilio.url,
        "DATAVERSE_MAX_RETRIES": "2",
        "RTJ_AUTH_MODE": "secret",
        "RTJ_OUTBOUND_SECRET": RTJ_SECRET,
        "CALLBACK_PROCESSING": "inline",  # assertions right after a callback; queued mode: test_throughput.py
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    host.environ.update(env)
    service = bootstrap.build_service(load_settings(env), queue=host.queue)
    bootstrap.install(service)
    try:
        yield Channel(host, dataverse, twilio, service, callback_base, env)
    finally:
        bootstrap.install(None)
        server.shutdown()
        server.server_close()
        twilio.stop()
        dataverse.stop()
