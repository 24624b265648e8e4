"""What every benchmark run shares: the ids of one journey, its org in the Dataverse emulator, the app settings."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-dataverse-token"
KEY = "bench-loopback-key"
MESSAGE_TABLE = "cr123_smsmessage"
MESSAGE_ID = "5f1c1a2e-0b7d-4c3a-9e41-6a8b2c3d4e51"
JOURNEY_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a01"
ITERATION_ID = "9a6e2f10-1c2d-4e3f-8a9b-0c1d2e3f4a02"


def app_env(dataverse: str, gateway: str, storage: str, callback_base: str, table: str) -> dict[str, str]:
    """The app settings every benchmark run shares: the emulators, the loopback gateway, the state table."""
    return {
        "DATAVERSE_URL": dataverse,
        "DATAVERSE_STATIC_TOKEN": TOKEN,
        "AzureWebJobsStorage": storage,
        "STATE_TABLE_NAME": table,
        "ServiceBusConnection": "Endpoint=sb://bench.invalid/;SharedAccessKeyName=b;SharedAccessKey=b",
        "ACTIVITY_QUEUE_NAME": "activities",
        "CALLBACK_QUEUE_NAME": "callbacks",
        "POISON_QUEUE_NAME": "activities-poison",
        "CHANNEL_PROVIDER": "loopback",
        "LOOPBACK_PROVIDER_URL": gateway,
        "LOOPBACK_SIGNING_KEY": KEY,
        "CALLBACK_BASE_URL": callback_base,
        "MESSAGE_BODY_COLUMN": "cr123_body",
    }


def contact_id(i: int) -> str:
    return str(uuid.UUID(int=0xC0A80101_0000_4000_8000_000000000000 + i))


def journey_org(n: int) -> Any:
    """The Dataverse emulator with one message and N contacts (a journey of N contacts sharing one text)."""
    from devtools.emulators.dataverse import DataverseEmulator

    dataverse = DataverseEmulator(token=TOKEN)
    dataverse.add_entity(MESSAGE_TABLE, "cr123_smsmessages", "cr123_smsmessageid")
    dataverse.add_row(MESSAGE_TABLE, MESSAGE_ID, {"cr123_body": "Hi {{contact.firstname}}, your offer is ready."})
    dataverse.add_entity("contact", "contacts", "contactid")
    dataverse.add_columns("contact", ["firstname", "mobilephone", "donotphone"])
    for i in range(n):
        dataverse.add_row(
            "contact", contact_id(i), {"firstname": f"C{i}", "mobilephone": f"+1415{i:07d}", "donotphone": False}
        )
    return dataverse
