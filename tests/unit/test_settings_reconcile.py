"""RECONCILE_AFTER_SECONDS (issue #13): a Settings mixin, composed with pydantic-settings, carried to the use case."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.bootstrap import channel_config
from shared.settings import ConfigurationError, Settings, load_settings
from shared.settings_reconcile import ReconcileSettings
from tests.unit.test_settings import BASE, settings_with


def test_the_mixin_is_part_of_the_settings_and_defaults_to_600() -> None:
    assert issubclass(Settings, ReconcileSettings)
    settings = load_settings(BASE)
    assert settings.reconcile_after_seconds == 600.0
    assert channel_config(settings).reconcile_after == timedelta(seconds=600)


def test_the_exact_setting_name_is_read_from_the_environment() -> None:
    settings = load_settings(settings_with(RECONCILE_AFTER_SECONDS="900"))
    assert settings.reconcile_after_seconds == 900.0
    assert channel_config(settings).reconcile_after == timedelta(seconds=900)


@pytest.mark.parametrize("value", ["5", "100000", "soon"])
def test_out_of_range_values_are_a_clear_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings(settings_with(RECONCILE_AFTER_SECONDS=value))
    assert "RECONCILE_AFTER_SECONDS" in str(error.value)
