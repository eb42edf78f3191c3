"""SqlQuoteRepository: the QuoteRepository port on SQLAlchemy (PostgreSQL in production, SQLite)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from src.adapters.sql.guard import SessionLike, rollback_quietly, storage_errors
from src.adapters.sql.orm import CoinRow, QuoteRow
from src.domain.errors import StorageError
from src.domain.model import (
    MAX_SYMBOLS_PER_REQUEST,
    QUOTE_FIGURES,
    Coin,
    CoinQuote,
    Quote,
)
from src.domain.ports import QuoteRepository

logger = logging.getLogger(__name__)

# PostgreSQL aborts one of two transactions it finds deadlocked (40P01), or one that lost a
# serialization race (40001); run again, the same writes succeed.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 5


@functools.lru_cache(maxsize=MAX_SYMBOLS_PER_REQUEST)
def _newest_statement(count: int):
    """The newest quote of each of `count` symbols in one SELECT, built once per count.

    One `ORDER BY fetched_at DESC LIMIT 1` subquery per symbol, each a short backward scan of
    `ix_quotes_lookup`: the cost stays flat as history grows (refresh-ahead adds a row per symbol
    a round). Ranking every stored row of the symbols with a window function, as this did
    before, read all of their history on every database hit.
    """
    quotes, coins = QuoteRow.__table__, CoinRow.__table__
    newest_ids = [
        select(quotes.c.id)
        .where(quotes.c.lookup_symbol == bindparam(f"symbol_{i}"),
               quotes.c.currency == bindparam("currency"))
        .order_by(quotes.c.fetched_at.desc(), quotes.c.id.desc())
        .limit(1)
        .scalar_subquery()
        for i in range(count)
    ]
    # Plain columns, not ORM entities: no identity map or instance state on the read path.
    return (
        select(
            *quotes.c,
            coins.c.name.label("coin_name"),
            coins.c.symbol.label("coin_symbol"),
            coins.c.slug.label("coin_slug"),
            coins.c.date_added.label("coin_date_added"),
        )
        .join(coins, coins.c.id == quotes.c.coin_id)
        .where(quotes.c.id.in_(newest_ids))
    )


def _coin_upsert(insert):
    stmt = insert(CoinRow.__table__)
    return stmt.on_conflict_do_update(
        index_elements=[CoinRow.__table__.c.id],
        set_={c: stmt.excluded[c] for c in ("symbol", "name", "slug", "date_added", "updated_at")},
    )


_COIN_UPSERTS = {"postgresql": _coin_upsert(postgresql.insert),
                 "sqlite": _coin_upsert(sqlite.insert)}
_INSERT_QUOTE = QuoteRow.__table__.insert()


class SqlQuoteRepository(QuoteRepository):
    """Append-only quote history; the newest row per symbol is the stored quote.

    Coins are keyed by their CoinMarketCap id. Each row also records the symbol it answered,
    because symbols are not unique and the coin behind one can change.
    """

    def __init__(self, session: SessionLike, reader: Engine | None = None) -> None:
        self.session = session
        # An engine whose connections are all autocommit (set once per connection): reads need
        # no per-request switch to autocommit and back, two driver calls and a reset on checkin
        # (found by profiling the database hit). None: the session's engine, switched per read.
        self.reader = reader

    def newest(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        if not symbols:
            return {}
        with storage_errors("reading stored quotes failed", "read"):
            # An autocommit connection of its own: the read leaves no transaction open ("idle in
            # transaction") while the caller goes on to CoinMarketCap, and it saves the BEGIN
            # and ROLLBACK round trips.
            with (self.reader or self.session.get_bind()).connect() as conn:  # type: ignore[union-attr]
                if self.reader is None:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                rows = conn.execute(_newest_statement(len(symbols)), {
                    "currency": currency,
                    **{f"symbol_{i}": symbol for i, symbol in enumerate(symbols)},
                }).all()
        return {row.lookup_symbol: _to_domain(row) for row in rows}

    def add(self, quotes: Mapping[str, CoinQuote]) -> None:
        if not quotes:
            return
        # A stable order (coin id), so that two concurrent writers lock the coins they share in
        # the same order and never deadlock each other; the retry covers anyone else.
        by_coin = sorted(quotes.items(), key=lambda item: (item[1].coin.id, item[0]))
        coins = list({q.coin.id: _coin_values(q) for _, q in by_coin}.values())
        rows = [_quote_values(symbol, q) for symbol, q in by_coin]
        # ValueError: a value the driver refuses before sending it (psycopg2: NUL in text).
        with storage_errors("storing quotes failed", "write", also=(ValueError,)):
            for attempt in Retrying(retry=retry_if_exception(_is_transient),
                                    stop=stop_after_attempt(WRITE_ATTEMPTS),
                                    wait=wait_random_exponential(multiplier=0.02, max=0.5),
                                    before_sleep=_log_retry, reraise=True):
                with attempt:
                    self._write(coins, rows)

    def _write(self, coins: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
        """One transaction: upsert the coins, append the quote rows; rolled back on failure."""
        try:
            upsert = _COIN_UPSERTS.get(self.session.get_bind().dialect.name)
            if upsert is None:
                raise StorageError("unsupported database dialect")
            # Statements built once and run with a list of rows: SQLAlchemy batches them into
            # one multi-row statement ("insertmanyvalues") and reuses the compiled form.
            self.session.execute(upsert, coins)
            self.session.execute(_INSERT_QUOTE, rows)
            self.session.commit()
        except (SQLAlchemyError, ValueError):
            self._rollback()
            raise

    def ping(self) -> None:
        try:
            with storage_errors("database unreachable", "ping", cleanup=self._rollback):
                self.session.execute(text("SELECT 1"))
        finally:
            self._rollback()  # end the probe's transaction

    def _rollback(self) -> None:
        rollback_quietly(self.session)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) in _TRANSIENT_SQLSTATES


def _log_retry(retry_state: Any) -> None:
    logger.warning("storing quotes: %s, attempt %d of %d; trying again",
                   type(retry_state.outcome.exception().orig).__name__, retry_state.attempt_number,
                   WRITE_ATTEMPTS)


def _coin_values(q: CoinQuote) -> dict[str, Any]:
    return {
        "id": q.coin.id,
        "symbol": q.coin.symbol,
        "name": q.coin.name,
        "slug": q.coin.slug,
        "date_added": q.coin.date_added,
        "updated_at": q.fetched_at,
    }


def _quote_values(symbol: str, q: CoinQuote) -> dict[str, Any]:
    coin, quote = q.coin, q.quote
    return {
        "coin_id": coin.id,
        "lookup_symbol": symbol,
        "currency": quote.currency,
        "fetched_at": q.fetched_at,
        "cmc_rank": coin.cmc_rank,
        "is_active": coin.is_active,
        "num_market_pairs": coin.num_market_pairs,
        "circulating_supply": coin.circulating_supply,
        "total_supply": coin.total_supply,
        "max_supply": coin.max_supply,
        "coin_last_updated": coin.last_updated,
        "price": quote.price,
        "quote_last_updated": quote.last_updated,
        **{name: getattr(quote, name) for name in QUOTE_FIGURES},
    }


def _to_domain(row: Any) -> CoinQuote:
    coin = Coin(
        id=row.coin_id,
        name=row.coin_name,
        symbol=row.coin_symbol,
        slug=row.coin_slug,
        cmc_rank=row.cmc_rank,
        is_active=row.is_active,
        num_market_pairs=row.num_market_pairs,
        circulating_supply=row.circulating_supply,
        total_supply=row.total_supply,
        max_supply=row.max_supply,
        date_added=row.coin_date_added,
        last_updated=row.coin_last_updated,
    )
    quote = Quote(
        currency=row.currency,
        price=row.price,
        last_updated=row.quote_last_updated,
        **{name: getattr(row, name) for name in QUOTE_FIGURES},
    )
    return CoinQuote(coin=coin, quote=quote, fetched_at=row.fetched_at)
