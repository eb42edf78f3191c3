"""Real PostgreSQL and memcached for the integration tier, started here unless given.

TEST_DATABASE_URL / TEST_MEMCACHED_SERVERS name running servers; otherwise throwaway ones are
started (PostgreSQL via initdb, two memcached processes). Missing servers fail the tests with
what to install: a skipped integration tier would be a green light that means nothing.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text

from src.entrypoints.app import MIGRATIONS_DIR, create_app
from src.entrypoints.settings import Settings
from tests.fake_cmc.app import FakeCmcServer
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.servers import Memcached, Postgres, ServerUnavailable


def _start(factory):
    try:
        return factory().start()
    except (ServerUnavailable, OSError) as exc:
        pytest.fail(f"cannot start a test server: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def postgres():
    """A running throwaway PostgreSQL (None when TEST_DATABASE_URL names one)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = _start(Postgres)
    yield server
    server.close()


@pytest.fixture(scope="session")
def database_url(postgres):
    url = os.environ.get("TEST_DATABASE_URL") or postgres.url
    # Apply the real migrations: the schema under test is the one production gets.
    import flask_migrate

    app = create_app(Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9", database_url=url))
    with app.app_context():
        flask_migrate.upgrade(directory=str(MIGRATIONS_DIR))
    return url


@pytest.fixture(scope="session")
def memcached_pair():
    """Two running memcached servers (None when TEST_MEMCACHED_SERVERS names them)."""
    if os.environ.get("TEST_MEMCACHED_SERVERS"):
        yield None
        return
    servers = [_start(Memcached), _start(Memcached)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def memcached_servers(memcached_pair) -> list[str]:
    given = os.environ.get("TEST_MEMCACHED_SERVERS")
    if given:
        return [s.strip() for s in given.split(",") if s.strip()]
    return [server.address for server in memcached_pair]


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE quotes, coins RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def flush_memcached(memcached_servers):
    from pymemcache.client.base import Client

    def flush() -> None:
        for server in memcached_servers:
            host, _, port = server.rpartition(":")
            client = Client((host, int(port)), connect_timeout=1, timeout=1)
            client.flush_all()
            client.close()

    flush()
    return flush


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
