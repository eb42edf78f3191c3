"""History tests' shared part: the same cases on real PostgreSQL and on SQLite (`make run`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from src.adapters.sql.quotes import SqlQuoteRepository
from src.domain.model import CoinQuote
from tests.conftest import migrate_database

BACKENDS = ["postgresql", "sqlite"]


@dataclass
class Backend:
    """A migrated database of one dialect, with a repository to store fetches through."""

    name: str
    url: str
    engine: Engine

    def store(self, fetches: Iterable[tuple[str, CoinQuote]]) -> None:
        """Store each (symbol, quote) as its own fetch, as the service does, in order."""
        with Session(self.engine) as session:
            repository = SqlQuoteRepository(session)
            for symbol, quote in fetches:
                repository.add({symbol: quote})


def open_backend(dialect: str, request: pytest.FixtureRequest, directory: Path) -> Backend:
    """An empty migrated database: the session's PostgreSQL (emptied), or a new SQLite file."""
    if dialect == "postgresql":
        url = request.getfixturevalue("database_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE quotes, coins RESTART IDENTITY CASCADE"))
    else:
        url = f"sqlite:///{directory}/history.db"
        migrate_database(url)
        engine = create_engine(url)
    return Backend(dialect, url, engine)


def newest_per_interval(times: Iterable[datetime], seconds: int | None, start: datetime,
                        end: datetime, count: int) -> list[datetime]:
    """The rule of README "Price history" written out plainly (fetch times are distinct here): of the `count`
    newest intervals of the range, the newest fetch of each that holds one."""
    if seconds is not None:
        oldest_interval = int(end.timestamp()) // seconds - count + 1
        start = max(start, datetime.fromtimestamp(oldest_interval * seconds, UTC))
    inside = sorted(t for t in times if start <= t <= end)
    if seconds is None:
        return inside[-count:]
    newest: dict[int, datetime] = {}
    for moment in inside:
        bucket = int(moment.timestamp()) // seconds
        newest[bucket] = max(newest.get(bucket, moment), moment)
    return sorted(newest.values())[-count:]


def generate_history(engine: Engine, coins: int, days: int, step_minutes: int, now: datetime,
                     currency: str = "USD") -> int:
    """Fetches of `coins` coins (symbols C1.., ids 1001..) every `step_minutes` (a few seconds
    off the minute, so that boundaries are crossed) over `days` days up to `now`; returns the
    number of rows."""
    from datetime import timedelta
    from decimal import Decimal

    from src.adapters.sql.orm import CoinRow, QuoteRow

    steps = days * 24 * 60 // step_minutes
    rows = []
    for coin in range(1, coins + 1):
        for step in range(steps):
            moment = now - timedelta(minutes=step * step_minutes, seconds=(step * 7) % 50)
            rows.append({
                "coin_id": 1000 + coin, "lookup_symbol": f"C{coin}", "currency": currency,
                "fetched_at": moment, "cmc_rank": coin, "is_active": True,
                "price": Decimal(coin * 1000 + step % 997) / 7, "quote_last_updated": moment,
            })
    with engine.begin() as conn:
        conn.execute(CoinRow.__table__.insert(), [
            {"id": 1000 + c, "symbol": f"C{c}", "name": f"Coin {c}", "slug": f"coin-{c}",
             "updated_at": now} for c in range(1, coins + 1)])
        for start in range(0, len(rows), 5000):
            conn.execute(QuoteRow.__table__.insert(), rows[start:start + 5000])
    return len(rows)
