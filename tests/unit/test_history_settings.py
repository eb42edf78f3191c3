"""HISTORY_FULL_DAYS and HISTORY_HOURLY_DAYS: defaults, values, and errors naming the variable."""

from __future__ import annotations

import pytest

from src.entrypoints.settings import ConfigError, Settings


def test_history_retention_defaults_to_seven_and_ninety_days():
    settings = Settings.from_env({})

    assert (settings.history_full_days, settings.history_hourly_days) == (7, 90)


def test_history_retention_is_read():
    settings = Settings.from_env({"HISTORY_FULL_DAYS": "3", "HISTORY_HOURLY_DAYS": "30"})

    assert (settings.history_full_days, settings.history_hourly_days) == (3, 30)


@pytest.mark.parametrize("env, name", [
    ({"HISTORY_FULL_DAYS": "seven"}, "HISTORY_FULL_DAYS"),
    ({"HISTORY_FULL_DAYS": "0"}, "HISTORY_FULL_DAYS"),
    ({"HISTORY_FULL_DAYS": "-1"}, "HISTORY_FULL_DAYS"),
    ({"HISTORY_HOURLY_DAYS": "1.5"}, "HISTORY_HOURLY_DAYS"),
    ({"HISTORY_HOURLY_DAYS": "0"}, "HISTORY_HOURLY_DAYS"),
    ({"HISTORY_FULL_DAYS": "30", "HISTORY_HOURLY_DAYS": "10"}, "HISTORY_HOURLY_DAYS"),
])
def test_bad_history_retention_stops_start_up_naming_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)
