"""The integration tier: the fake CoinMarketCap in a thread, and the wired app's settings.

The real PostgreSQL and memcached fixtures live in tests/conftest.py (shared with e2e).
"""

from __future__ import annotations

import pytest

from src.entrypoints.settings import Settings
from tests.fake_cmc.app import FakeCmcServer
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY


@pytest.fixture(scope="session")
def fake_cmc():
    with FakeCmcServer() as server:
        yield server


@pytest.fixture
def cmc(fake_cmc):
    fake_cmc.market.reset()
    return fake_cmc


@pytest.fixture
def wired_settings(database_url, memcached_servers, cmc, engine, flush_memcached) -> Settings:
    """Settings for the real app over real PostgreSQL, memcached and the fake CoinMarketCap."""
    return Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=cmc.url, database_url=database_url,
                    memcached_servers=tuple(memcached_servers))
