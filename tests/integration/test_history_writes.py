"""History writes on real PostgreSQL: concurrent writers, deadlocks, and reads that end their transaction."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from src.adapters.sql.orm import QuoteRow
from src.adapters.sql.quotes import SqlQuoteRepository
from tests.fakes import T0, coin_quote

COINS = [(f"C{i}", 1000 + i) for i in range(40)]


@pytest.fixture
def own_engine(database_url):
    """Engines whose connections carry a unique application_name (found in pg_stat_activity)."""
    made = []

    def make(**server_settings: str):
        name = f"coinquote-test-{uuid.uuid4().hex[:8]}"
        options = " ".join(f"-c {key}={value}" for key, value in server_settings.items())
        made.append(create_engine(database_url,
                                  connect_args={"application_name": name, "options": options}))
        return made[-1], name

    yield make
    for engine in made:
        engine.dispose()


def quote_rows(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(QuoteRow))


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_concurrent_overlapping_writers_keep_every_row_and_never_deadlock(engine, caplog):
    writers, batches, batch_size = 8, 6, 25
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        with Session(engine) as session:
            repo = SqlQuoteRepository(session)
            start.wait()
            for batch in range(batches):
                chosen = rng.sample(COINS, batch_size)  # overlapping sets, each in its own order
                try:
                    repo.add({symbol: coin_quote(symbol, coin_id, "1.5",
                                                 fetched_at=T0 + timedelta(seconds=batch))
                              for symbol, coin_id in chosen})
                except Exception as exc:  # noqa: BLE001 - counted below, the thread must go on
                    failures.append(exc)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert failures == []
    assert quote_rows(engine) == writers * batches * batch_size
    # Written in one order (coin id), they never even needed the deadlock retry.
    assert not [r for r in caplog.records if "trying again" in r.getMessage()]


def test_a_write_that_postgresql_aborts_in_a_deadlock_is_retried_and_kept(engine, own_engine):
    SqlQuoteRepository(Session(engine)).add({"A": coin_quote("A", 1, "1"), "B": coin_quote("B", 2, "2")})
    writer_engine, writer_name = own_engine()
    later = T0 + timedelta(minutes=1)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with Session(writer_engine) as session:
                SqlQuoteRepository(session).add({"A": coin_quote("A", 1, "3", fetched_at=later),
                                                 "B": coin_quote("B", 2, "4", fetched_at=later)})
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome.append(exc)

    writer = threading.Thread(target=write)
    with engine.connect() as rival:
        # The rival outlasts the writer's deadlock check: PostgreSQL aborts the writer, not it.
        rival.execute(text("SET deadlock_timeout = '20s'"))
        rival.execute(text("SELECT id FROM coins WHERE id = 2 FOR UPDATE"))
        writer.start()
        wait_until(lambda: waiting_on_a_lock(engine, writer_name))  # holds coin 1, waits for 2
        rival.execute(text("SELECT id FROM coins WHERE id = 1 FOR UPDATE"))  # a cycle: one goes
        rival.commit()
    writer.join(30)

    assert outcome == [None]
    assert quote_rows(engine) == 4


def waiting_on_a_lock(engine, application_name: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                                      " AND wait_event_type = 'Lock'"), {"name": application_name}).scalar())


def states(engine, application_name: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT state FROM pg_stat_activity WHERE application_name = :name"),
                                 {"name": application_name}).scalars())


def test_a_read_leaves_no_transaction_open_while_the_provider_is_called(engine, own_engine):
    SqlQuoteRepository(Session(engine)).add({"BTC": coin_quote("BTC", 1, "60000")})
    reader_engine, reader_name = own_engine()

    with Session(reader_engine) as session:
        found = SqlQuoteRepository(session).newest(["BTC"], "USD")
        after_the_read = states(engine, reader_name)

    assert list(found) == ["BTC"]
    assert "idle in transaction" not in after_the_read


def test_a_write_after_a_slow_upstream_call_survives_the_idle_in_transaction_timeout(engine, own_engine):
    SqlQuoteRepository(Session(engine)).add({"BTC": coin_quote("BTC", 1, "60000")})
    app_engine, _ = own_engine(idle_in_transaction_session_timeout="300ms")

    with Session(app_engine) as session:
        repo = SqlQuoteRepository(session)
        repo.newest(["BTC", "ETH"], "USD")
        time.sleep(0.8)  # CoinMarketCap takes its time; the server ends idle transactions at 300 ms
        repo.add({"ETH": coin_quote("ETH", 1027, "3000", fetched_at=T0 + timedelta(minutes=1))})
        stored = repo.newest(["BTC", "ETH"], "USD")

    assert set(stored) == {"BTC", "ETH"}
    assert quote_rows(engine) == 2


def test_a_value_the_driver_refuses_is_a_storage_error_and_the_next_write_is_kept(engine):
    from src.domain.errors import StorageError

    with Session(engine) as session:
        repo = SqlQuoteRepository(session)
        with pytest.raises(StorageError):  # psycopg2 raised ValueError: the service let it be a 500
            repo.add({"BTC": coin_quote("BTC", 1, "67000", name="Bit\x00coin")})

        repo.add({"ETH": coin_quote("ETH", 1027, "3500")})

    assert quote_rows(engine) == 1
