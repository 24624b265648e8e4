"""Shared pytest fixtures: Azurite (the real Table Storage emulator) started once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools import azurite


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """Connection string of a private in-memory Azurite started for this session.

    Set ``AZURITE_TABLE_ENDPOINT`` (e.g. http://127.0.0.1:10002/devstoreaccount1) to reuse a running one.
    """
    endpoint = os.environ.get("AZURITE_TABLE_ENDPOINT")
    if endpoint:
        yield azurite.connection_string(endpoint)
        return
    server = azurite.start()
    try:
        yield server.connection_string
    finally:
        server.stop()
