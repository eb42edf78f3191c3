"""CACHE_NAMESPACE: with BASE_CURRENCY, what every key a deployment shares in memcached starts
with (issue 21, defect 5)."""

from __future__ import annotations

import pytest

from src.bootstrap import cache_backend
from src.entrypoints.settings import ConfigError, Settings


def test_the_namespace_names_the_deployment_and_the_base_currency():
    servers = {"MEMCACHED_SERVERS": "m1:11211"}  # pymemcache connects lazily: no socket here
    default = Settings.from_env(servers)
    eur = Settings.from_env({**servers, "CACHE_NAMESPACE": "shop-2", "BASE_CURRENCY": "eur"})

    assert default.key_namespace == "coinquote:USD"
    assert eur.key_namespace == "shop-2:EUR"
    assert cache_backend(default).key_prefix == "coinquote:"
    assert cache_backend(eur).key_prefix == "shop-2:"  # quote keys name the currency


@pytest.mark.parametrize("value", ["two words", "a:b", "x" * 33, "ü"])
def test_a_namespace_no_key_can_carry_stops_start_up_naming_the_variable(value):
    with pytest.raises(ConfigError, match="^CACHE_NAMESPACE must be"):
        Settings.from_env({"CACHE_NAMESPACE": value})
