"""The integration tier: the fake CoinMarketCap in a thread, and the wired app's settings.

The real PostgreSQL and memcached fixtures live in tests/conftest.py (shared with e2e).
"""

from __future__ import annotations

import pytest

from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from tests.conftest import NoServerErrorClient
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


@pytest.fixture
def wired_app(wired_settings):
    """The real app on real PostgreSQL and memcached and the fake CoinMarketCap; no 500s."""
    app = create_app(wired_settings)
    app.test_client_class = NoServerErrorClient
    return app


@pytest.fixture
def client(wired_app):
    return wired_app.test_client()
