"""Outages of real memcached and PostgreSQL processes: readiness reports them, requests go on."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from src.adapters.sql.orm import db
from src.entrypoints.settings import Settings
from tests.conftest import make_client, migrate_database
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.fake_cmc.market import Failure
from tests.servers import Memcached, Postgres


@pytest.fixture(scope="module")
def own_postgres():
    server = Postgres().start()
    migrate_database(server.url)
    yield server
    server.close()


@pytest.fixture
def own_memcached():
    server = Memcached().start()
    yield server
    server.close()


@pytest.fixture
def client(own_postgres, own_memcached, cmc):
    engine = create_engine(own_postgres.url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE quotes, coins"))
    engine.dispose()
    settings = Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=cmc.url, database_url=own_postgres.url,
                        memcached_servers=(own_memcached.address,))
    return make_client(settings)


def wait_for_status(client, path: str, status: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def sources(client, symbols: str) -> dict[str, str]:
    response = client.get(f"/api/v1/quotes?symbol={symbols}")
    assert response.status_code == 200, response.get_json()
    return {s: c["source"] for s, c in response.get_json()["data"].items()}


def test_readyz_names_memcached_while_it_is_down_and_recovers(client, own_memcached):
    assert client.get("/readyz").status_code == 200

    own_memcached.stop()
    down = wait_for_status(client, "/readyz", 503)

    assert down.status_code == 503
    assert down.get_json()["checks"]["cache"].startswith("failing")
    assert down.get_json()["checks"]["database"] == "ok"
    assert down.get_json()["status"] == "failing: cache"

    own_memcached.start()
    assert wait_for_status(client, "/readyz", 200).status_code == 200


def test_readyz_names_the_database_while_it_is_down_and_recovers(client, own_postgres):
    assert client.get("/readyz").status_code == 200

    own_postgres.pause()
    try:
        down = wait_for_status(client, "/readyz", 503)
        assert down.get_json()["checks"]["database"].startswith("failing")
        assert down.get_json()["checks"]["cache"] == "ok"
    finally:
        own_postgres.resume()

    assert wait_for_status(client, "/readyz", 200).status_code == 200


def test_memcached_down_mid_run_stored_symbols_answer_from_the_database(client, own_memcached, cmc):
    assert sources(client, "BTC,ETH") == {"BTC": "provider", "ETH": "provider"}

    own_memcached.stop()
    started = time.monotonic()
    answers = [sources(client, "BTC,ETH") for _ in range(5)]
    elapsed = time.monotonic() - started

    assert all(a == {"BTC": "database", "ETH": "database"} for a in answers)
    assert len(cmc.quote_calls()) == 1
    assert elapsed < 5  # short socket timeouts and dead-server back-off, not a hang per request

    own_memcached.start()
    deadline = time.monotonic() + 30
    while sources(client, "BTC") != {"BTC": "cache"} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sources(client, "BTC") == {"BTC": "cache"}


def test_database_down_cached_symbols_answer_and_new_ones_wait_for_the_credit_counters(
        client, own_postgres, cmc):
    assert sources(client, "BTC") == {"BTC": "provider"}
    calls = len(cmc.quote_calls())

    own_postgres.pause()
    try:
        cached = sources(client, "BTC")
        new = client.get("/api/v1/quotes?symbol=DOGE")
    finally:
        own_postgres.resume()

    assert cached == {"BTC": "cache"}
    # The credit counters live in the database: no call while they cannot be read (processes
    # counting alone would together overspend the plan), and nothing fetched would be stored.
    assert new.status_code == 503 and int(new.headers["Retry-After"]) > 0
    assert "credit" in new.get_json()["message"]
    assert len(cmc.quote_calls()) == calls


def test_a_slow_upstream_call_does_not_cost_the_write_its_connection(client, own_postgres, cmc):
    """With idle_in_transaction_session_timeout on the server, the read before the upstream call
    must not leave a transaction open: the server would kill the connection the write needs."""
    engine = create_engine(own_postgres.url)
    with engine.begin() as conn:
        conn.execute(text("ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '300ms'"))
    with client.application.app_context():
        db.engine.dispose()  # new connections take the setting
    cmc.market.failures.append(Failure(status=500, delay=0.8))  # then the retry succeeds
    try:
        answer = sources(client, "BTC")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM quotes WHERE lookup_symbol = 'BTC'")).scalar()
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER DATABASE postgres RESET idle_in_transaction_session_timeout"))
        engine.dispose()

    assert answer == {"BTC": "provider"}
    assert stored == 1
