"""SqlQuoteRepository: the QuoteRepository port on SQLAlchemy (PostgreSQL in production, SQLite)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from src.adapters.metrics import DATABASE_ERRORS
from src.adapters.orm import CoinRow, QuoteRow
from src.domain.errors import StorageError
from src.domain.model import QUOTE_FIGURES, Coin, CoinQuote, Quote
from src.domain.ports import QuoteRepository

logger = logging.getLogger(__name__)



def _newest_statement():
    """The newest quote per symbol in one SELECT, built once (only its parameters change)."""
    quotes, coins = QuoteRow.__table__, CoinRow.__table__
    ranked = (
        select(
            quotes.c.id,
            func.row_number()
            .over(partition_by=quotes.c.lookup_symbol,
                  order_by=(quotes.c.fetched_at.desc(), quotes.c.id.desc()))
            .label("position"),
        )
        .where(quotes.c.lookup_symbol.in_(bindparam("symbols", expanding=True)),
               quotes.c.currency == bindparam("currency"))
        .subquery()
    )
    # Plain columns, not ORM entities: no identity map or instance state on the read path.
    return (
        select(
            *quotes.c,
            coins.c.name.label("coin_name"),
            coins.c.symbol.label("coin_symbol"),
            coins.c.slug.label("coin_slug"),
            coins.c.date_added.label("coin_date_added"),
        )
        .join(ranked, ranked.c.id == quotes.c.id)
        .join(coins, coins.c.id == quotes.c.coin_id)
        .where(ranked.c.position == 1)
    )


_NEWEST = _newest_statement()


def _coin_upsert(insert):
    stmt = insert(CoinRow.__table__)
    return stmt.on_conflict_do_update(
        index_elements=[CoinRow.__table__.c.id],
        set_={c: stmt.excluded[c] for c in ("symbol", "name", "slug", "date_added", "updated_at")},
    )


_COIN_UPSERTS = {"postgresql": _coin_upsert(postgresql.insert), "sqlite": _coin_upsert(sqlite.insert)}
_INSERT_QUOTE = QuoteRow.__table__.insert()


class SqlQuoteRepository(QuoteRepository):
    """Append-only quote history; the newest row per symbol is the stored quote.

    Coins are keyed by their CoinMarketCap id. Each row also records the symbol it answered,
    because symbols are not unique and the coin behind one can change.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def newest(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        if not symbols:
            return {}
        try:
            rows = self.session.execute(
                _NEWEST, {"symbols": list(symbols), "currency": currency}
            ).all()
        except SQLAlchemyError as exc:
            DATABASE_ERRORS.labels("read").inc()
            self._rollback()
            raise StorageError(f"reading stored quotes failed ({type(exc).__name__})") from exc
        return {row.lookup_symbol: _to_domain(row) for row in rows}

    def add(self, quotes: Mapping[str, CoinQuote]) -> None:
        if not quotes:
            return
        coins = {q.coin.id: _coin_values(q) for q in quotes.values()}
        try:
            upsert = _COIN_UPSERTS.get(self.session.get_bind().dialect.name)
            if upsert is None:
                raise StorageError("unsupported database dialect")
            # Statements built once and run with a list of rows: SQLAlchemy batches them into
            # one multi-row statement ("insertmanyvalues") and reuses the compiled form.
            self.session.execute(upsert, list(coins.values()))
            self.session.execute(_INSERT_QUOTE, [_quote_values(symbol, q) for symbol, q in quotes.items()])
            self.session.commit()
        except SQLAlchemyError as exc:
            DATABASE_ERRORS.labels("write").inc()
            self._rollback()
            raise StorageError(f"storing quotes failed ({type(exc).__name__})") from exc

    def ping(self) -> None:
        try:
            self.session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            DATABASE_ERRORS.labels("ping").inc()
            self._rollback()
            raise StorageError(f"database unreachable ({type(exc).__name__})") from exc
        finally:
            self._rollback()  # end the probe's transaction

    def _rollback(self) -> None:
        try:
            self.session.rollback()
        except SQLAlchemyError:  # the connection itself is gone; the pool will replace it
            logger.debug("rollback failed", exc_info=True)


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
