"""Fuzzing set-up. Smoke size in CI (``FUZZ_EXAMPLES`` unset: 300 inputs per target); the full run sets
``FUZZ_EXAMPLES=100000``: that many generated inputs in total, shared evenly by the ``TARGETS`` fuzz targets
(see bench/README.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from shared import bootstrap
from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.app.deps import build_deps
from shared.providers.acs import AcsProvider
from shared.providers.loopback import LoopbackProvider
from shared.providers.twilio import TwilioProvider
from shared.providers.whatsapp import WhatsAppProvider
from shared.service import ChannelService
from tests.fakes import FakeClock, FakeDataverse, config
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE

TARGETS = 15  # test_fuzz_context.py: 4; test_fuzz_callbacks.py: 2 + one per provider module (twilio, loopback, acs,
# whatsapp); test_fuzz_links.py: 1; test_fuzz_whatsapp.py: 2; test_fuzz_orgs.py: 2
_TOTAL = os.environ.get("FUZZ_EXAMPLES")
EXAMPLES = -(-int(_TOTAL) // TARGETS) if _TOTAL else 300
TWILIO_SID = "AC" + "a" * 32
TWILIO_TOKEN = "fuzz-twilio-token"
LOOPBACK_KEY = "fuzz-loopback-key"
ACS_SECRET = "fuzz-eventgrid-secret-0123456789"
WHATSAPP_SECRET = "fuzz-whatsapp-app-secret-0123456789"
WHATSAPP_VERIFY = "fuzz-whatsapp-verify-token"
WHATSAPP_PHONE_ID = "106540352242922"
BASE = "https://fuzz.example.net/api/callbacks"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 1000,  # CI: reproducible; the full run explores
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def providers() -> dict[str, object]:
    import requests

    session = requests.Session()
    return {
        "twilio": TwilioProvider(
            account_sid=TWILIO_SID,
            auth_token=TWILIO_TOKEN,
            sender="+15005550006",
            messaging_service_sid=None,
            api_base_url="http://127.0.0.1:9",
            callback_url=f"{BASE}/twilio",
            session=session,
        ),
        "loopback": LoopbackProvider(
            base_url="http://127.0.0.1:9", key=LOOPBACK_KEY, callback_url=f"{BASE}/loopback", session=session
        ),
        "acs": AcsProvider(
            endpoint="https://fuzz.communication.azure.com",
            sender="+15005550006",
            eventgrid_secret=ACS_SECRET,
            access_key="ZnV6ei1rZXk=",
            session=session,
        ),
        "whatsapp": WhatsAppProvider(
            phone_number_id=WHATSAPP_PHONE_ID,
            access_token="fuzz-access-token",
            app_secret=WHATSAPP_SECRET,
            verify_token=WHATSAPP_VERIFY,
            api_base_url="http://127.0.0.1:9/v21.0",
            session=session,
            opt_out_payloads=frozenset({"stop"}),
        ),
    }


def build_service() -> ChannelService:
    dataverse = FakeDataverse()
    dataverse.rows[(MESSAGE_TABLE, MESSAGE_ID)] = {"cr123_body": "Hi {{contact.firstname}}"}
    dataverse.rows[("contact", CONTACT_ID)] = {"mobilephone": "+447700900123", "donotphone": False}
    clock = FakeClock()
    all_providers = providers()
    # inline: the security tests assert what each callback recorded as soon as it was answered
    cfg = config(provider_name="twilio", callback_url=f"{BASE}/twilio", callback_processing="inline")
    deps = build_deps(
        cfg,
        dataverse,
        all_providers["twilio"],  # type: ignore[arg-type]
        MemoryStore(),
        MemoryQueue(),
        clock,
        providers=all_providers,  # type: ignore[arg-type]
    )
    return ChannelService(deps)


@pytest.fixture(scope="module")
def installed_service() -> Iterator[ChannelService]:
    service = build_service()
    bootstrap.install(service)
    try:
        yield service
    finally:
        bootstrap.install(None)
