"""Fixtures for the emulator tests (loopback only)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.emulators.dataverse import DataverseEmulator, seed_demo  # noqa: E402
from devtools.emulators.twilio import TwilioEmulator  # noqa: E402

ACCOUNT_SID = "AC" + "1234567890abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"


@pytest.fixture
def dv() -> Iterator[DataverseEmulator]:
    with DataverseEmulator(token="t0k3n") as emulator:
        yield emulator


@pytest.fixture
def demo(dv: DataverseEmulator) -> dict[str, object]:
    return seed_demo(dv)


@pytest.fixture
def tw() -> Iterator[TwilioEmulator]:
    with TwilioEmulator(ACCOUNT_SID, AUTH_TOKEN) as emulator:
        yield emulator
