"""SqlQuoteRepository against real PostgreSQL, with the schema the migrations create."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from src.adapters.sql.orm import CoinRow, QuoteRow
from src.adapters.sql.quotes import SqlQuoteRepository
from src.domain.errors import StorageError
from src.domain.model import Coin, CoinQuote, Quote
from tests.fakes import T0, coin_quote


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        yield session


@pytest.fixture
def repo(session):
    return SqlQuoteRepository(session)


def precise(symbol: str = "PEPE", coin_id: int = 24478) -> CoinQuote:
    return CoinQuote(
        coin=Coin(id=coin_id, name="Pepe", symbol=symbol, slug="pepe", cmc_rank=30,
                  circulating_supply=Decimal("420689899653542.56"), total_supply=Decimal("420690000000000"),
                  max_supply=None, date_added=T0 - timedelta(days=900), last_updated=T0),
        quote=Quote(currency="USD", price=Decimal("0.000012345678901234567890"), last_updated=T0,
                    market_cap=Decimal("5193702145.123456789"), percent_change_24h=Decimal("-0.000001")),
        fetched_at=T0,
    )


def test_round_trip_keeps_every_digit_and_the_time_zone(repo):
    repo.add({"PEPE": precise()})

    stored = repo.newest(["PEPE"], "USD")["PEPE"]

    assert stored == precise()
    assert stored.fetched_at.utcoffset() == timedelta(0)


def test_every_fetch_is_kept_and_the_newest_is_served(repo, session):
    repo.add({"BTC": coin_quote("BTC", 1, "60000")})
    repo.add({"BTC": coin_quote("BTC", 1, "61000", fetched_at=T0 + timedelta(minutes=1))})
    repo.add({"BTC": coin_quote("BTC", 1, "59000", fetched_at=T0 - timedelta(minutes=1))})

    newest = repo.newest(["BTC"], "USD")["BTC"]

    assert newest.quote.price == Decimal("61000")
    assert session.scalar(select(func.count()).select_from(QuoteRow)) == 3
    assert session.scalar(select(func.count()).select_from(CoinRow)) == 1


def test_coins_are_keyed_by_id_so_a_shared_symbol_can_change_coin(repo):
    repo.add({"ETC": coin_quote("ETC", 646, "0.0002", name="Ethercoin")})
    repo.add({"ETC": coin_quote("ETC", 1321, "26.91", name="Ethereum Classic",
                                fetched_at=T0 + timedelta(minutes=1))})

    newest = repo.newest(["ETC"], "USD")["ETC"]

    assert (newest.coin.id, newest.coin.name) == (1321, "Ethereum Classic")


def test_coin_metadata_follows_the_newest_fetch(repo):
    repo.add({"BTC": coin_quote("BTC", 1, "60000", name="Bitcoin")})
    repo.add({"BTC": coin_quote("BTC", 1, "61000", name="Bitcoin Renamed",
                                fetched_at=T0 + timedelta(minutes=1))})

    assert repo.newest(["BTC"], "USD")["BTC"].coin.name == "Bitcoin Renamed"


def test_newest_reads_many_symbols_in_one_select_and_skips_other_currencies(repo, engine):
    repo.add({"BTC": coin_quote("BTC", 1, "60000"), "ETH": coin_quote("ETH", 1027, "3000"),
              "SOL": coin_quote("SOL", 5426, "150")})
    repo.add({"BTC": coin_quote("BTC", 1, "55000", currency="EUR")})
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    found = repo.newest(["BTC", "ETH", "NOPE"], "USD")

    assert {s: q.quote.price for s, q in found.items()} == {"BTC": Decimal("60000"), "ETH": Decimal("3000")}
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_add_writes_in_one_transaction(repo, engine):
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))

    repo.add({f"S{i}": coin_quote(f"S{i}", 100 + i, "1.5") for i in range(50)})

    assert commits == [1]
    assert len(repo.newest([f"S{i}" for i in range(50)], "USD")) == 50


def test_unreachable_database_raises_storage_error():
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:9/none",
                           connect_args={"connect_timeout": 1})
    repo = SqlQuoteRepository(Session(engine))

    with pytest.raises(StorageError):
        repo.newest(["BTC"], "USD")
    with pytest.raises(StorageError):
        repo.add({"BTC": coin_quote("BTC", 1, "1")})
    with pytest.raises(StorageError):
        repo.ping()


def test_schema_matches_the_models(engine):
    """The migrations create exactly what the models describe (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from src.adapters.sql.orm import db
    from src.entrypoints.app import MIGRATIONS_DIR

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    assert diff == []
    assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def test_the_newest_quote_is_read_through_the_index_not_by_ranking_all_history(repo, engine):
    # Refresh-ahead adds a row per symbol a round: a database hit must not read them all.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO coins (id, symbol, name, slug, updated_at)"
                          " VALUES (1, 'BTC', 'Bitcoin', 'bitcoin', now())"))
        conn.execute(text(
            "INSERT INTO quotes (coin_id, lookup_symbol, currency, fetched_at, is_active, price,"
            " quote_last_updated) SELECT 1, 'BTC', 'USD', now() - n * interval '1 minute', true,"
            " n, now() FROM generate_series(1, 20000) AS n"))
        conn.execute(text("ANALYZE quotes"))
    repo.add({"BTC": coin_quote("BTC", 1, "99.5", fetched_at=T0 + timedelta(days=3650))})
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, parameters, *args: statements.append(
                     cursor.mogrify(statement, parameters).decode()))

    newest = repo.newest(["BTC", "ETH"], "USD")
    with engine.connect() as conn:
        plan = "\n".join(conn.execute(text("EXPLAIN (ANALYZE) " + statements[-1])).scalars())

    assert newest["BTC"].quote.price == Decimal("99.5")
    assert "ETH" not in newest
    assert "WindowAgg" not in plan and "ix_quotes_lookup" in plan
    # Every scan of quotes reads a handful of rows, not the 20,000 stored for BTC.
    assert all(int(rows) <= 10 for rows in re.findall(r"rows=(\d+) loops", plan)), plan
