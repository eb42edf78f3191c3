"""Fixtures shared by every tier.

Real PostgreSQL and memcached (integration and e2e tiers): TEST_DATABASE_URL and
TEST_MEMCACHED_SERVERS name running servers; otherwise throwaway ones are started (PostgreSQL
via initdb, two memcached processes). Missing servers fail the tests with what to install: a
skipped integration tier would be a green light that means nothing.
"""

from __future__ import annotations

import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from src.adapters.buffered_request_log import close_all as close_request_logs
from src.entrypoints.app import MIGRATIONS_DIR, create_app
from src.entrypoints.settings import Settings
from tests.servers import Memcached, Postgres, ServerUnavailable

TEST_KEY = "test-key-do-not-leak-7d3f9a"


class NoServerErrorClient(FlaskClient):
    """A test client that fails the test on any 500: none may ever reach a user."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        assert response.status_code != 500, response.get_data(as_text=True)
        return response


def make_client(settings: Settings, **ports) -> FlaskClient:
    """A test client of the real app (create_app) whose 500s fail the test."""
    app = create_app(settings, **ports)
    app.test_client_class = NoServerErrorClient
    return app.test_client()


@pytest.fixture(autouse=True)
def _request_log_flushers_end_with_the_test():
    """No app's request-log thread outlives its test (it would write to stopped servers and
    log to closed streams after the session)."""
    yield
    close_request_logs()


@pytest.fixture
def settings() -> Settings:
    return Settings(cmc_api_key=TEST_KEY, cmc_base_url="http://127.0.0.1:9")


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
    migrate_database(url)
    return url


def migrate_database(url: str) -> None:
    """Apply the real migrations: the schema under test is the one production gets."""
    import flask_migrate

    app = create_app(Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9", database_url=url))
    with app.app_context():
        flask_migrate.upgrade(directory=str(MIGRATIONS_DIR))


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
        # The symbols asked for too: calls carry the hot ones, and another test's would ride;
        # and the credit governor's counts and verdicts (another test's day is not this one's).
        conn.execute(text("TRUNCATE quotes, coins, requested_symbols, budget_counters"
                          " RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture
def flush_memcached(memcached_servers):
    from pymemcache.client.base import Client

    def flush() -> None:
        for server in memcached_servers:
            host, _, port = server.rpartition(":")
            client = Client((host, int(port)), connect_timeout=1, timeout=1)
            client.flush_all(noreply=False)  # wait for OK: a queued flush races the next get
            client.close()

    flush()
    return flush
