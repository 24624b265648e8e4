"""The provider contract suite runs once per harness (tests/contract/harnesses.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from shared.adapters.memory import MemoryQueue, MemoryStore
from shared.app.deps import build_deps
from shared.service import ChannelService
from tests.contract.harnesses import HARNESSES, Harness
from tests.fakes import FakeClock, FakeDataverse, config
from tests.helpers import CONTACT_ID, MESSAGE_ID, MESSAGE_TABLE

PHONE = "+447700900123"


@dataclass
class Contract:
    harness: Harness
    service: ChannelService
    dataverse: FakeDataverse
    queue: MemoryQueue
    clock: FakeClock
    callback_url: str

    def response_types(self) -> list[str]:
        return self.dataverse.response_types()


@pytest.fixture(params=sorted(HARNESSES))
def contract(request: pytest.FixtureRequest) -> Iterator[Contract]:
    harness: Harness = HARNESSES[request.param]()
    harness.start()
    callback_url = f"https://app.example/api/callbacks/{harness.name}"
    dataverse = FakeDataverse()
    dataverse.rows[(MESSAGE_TABLE, MESSAGE_ID)] = {"cr123_body": "Hi {{contact.firstname}}"}
    dataverse.rows[("contact", CONTACT_ID)] = {"mobilephone": PHONE, "donotphone": False, "firstname": "Avery"}
    # the emulators keep real time (Twilio lists creation times, ACS tracks repeatability for 5 minutes)
    store, queue, clock = MemoryStore(), MemoryQueue(), FakeClock(datetime.now(UTC))
    provider = harness.provider(callback_url)
    # inline: the contract asserts what each callback records, right after it is answered
    cfg = config(provider_name=harness.name, callback_url=callback_url, callback_processing="inline")
    service = ChannelService(build_deps(cfg, dataverse, provider, store, queue, clock))
    try:
        yield Contract(harness, service, dataverse, queue, clock, callback_url)
    finally:
        harness.stop()
