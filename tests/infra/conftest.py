"""Shared fixture of the infra tests: the parsed infra/ tree."""

from __future__ import annotations

import pytest

from tests.infra.infra_model import Infra


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.load()
