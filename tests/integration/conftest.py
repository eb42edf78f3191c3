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


class MemcachedProbe:
    """Direct reads of each memcached server, bypassing the app's client (for assertions)."""

    def __init__(self, servers: list[str]) -> None:
        from pymemcache.client.base import Client

        self.clients = [Client((host, int(port)), connect_timeout=2, timeout=2)
                        for host, _, port in (s.rpartition(":") for s in servers)]

    def get_everywhere(self, key: str) -> list[bytes | None]:
        """`key` as each server holds it (the app's prefix included)."""
        return [client.get(key) for client in self.clients]

    def sets(self) -> int:
        """How many set-like commands the servers have executed so far (stats cmd_set)."""
        return sum(int(client.stats()[b"cmd_set"]) for client in self.clients)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def memcached_probe(memcached_servers):
    probe = MemcachedProbe(memcached_servers)
    yield probe
    probe.close()
