"""SqlHistoryRepository: history bucketed in one statement and thinned in batches (SQL)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    delete,
    extract,
    func,
    literal,
    select,
    union_all,
)

from src.adapters.sql.guard import SessionLike, rollback_quietly, storage_errors
from src.adapters.sql.orm import CoinRow, QuoteRow, UTCDateTime
from src.domain.errors import StorageError
from src.domain.history import (
    DAY,
    HOUR,
    CoinHistory,
    HistoryPoint,
    HistoryQuery,
    HistoryRepository,
    PruneReport,
    RetentionPolicy,
    epoch_seconds,
    from_epoch,
)
from src.domain.model import Coin

logger = logging.getLogger(__name__)

_QUOTES = QuoteRow.__table__
_COINS = CoinRow.__table__
_NO_EARLIER = from_epoch(0)  # before any fetch


def epoch_bucket(column: Any, dialect: str, seconds: Any) -> Any:
    """Integer epoch seconds // `seconds`, the same integers on both dialects.

    Whole seconds first, then an integer division. PostgreSQL's extract() gives a numeric with
    microseconds, floored here. SQLite's strftime('%s') ROUNDS the fraction (10:04:59.999999
    becomes 10:05:00, the next interval), so the stored text is cut to whole seconds first.
    """
    if dialect == "postgresql":
        whole = cast(func.floor(extract("epoch", column)), BigInteger)
    elif dialect == "sqlite":
        # UTCDateTime is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) on SQLite.
        whole = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)
    else:
        raise StorageError(f"unsupported database dialect {dialect!r}")
    return whole // (literal(seconds, Integer) if isinstance(seconds, int) else seconds)


def _newest_first(table: Any) -> tuple[Any, Any]:
    # The tie-break of SqlQuoteRepository.newest: the later insert wins at equal fetched_at.
    return table.c.fetched_at.desc(), table.c.id.desc()


@functools.lru_cache(maxsize=128)
def history_statement(dialect: str, symbols: int, bucketed: bool, bounded_below: bool) -> Any:
    """One SELECT: resolve each symbol to its newest row's coin, bucket that coin's rows in the
    range, keep the newest per bucket, then the `:count` newest buckets; left-joined so that a
    known symbol with no point still answers (with NULL point columns).

    Built once per shape (only the parameters of history_parameters change): building and
    hashing the construct for every request cost more than the query itself.
    """
    q = _QUOTES
    names = [_param(f"symbol_{i}", String()) for i in range(symbols)]
    currency = _param("currency", String())
    newest_coin = [
        select(q.c.coin_id)
        .where(q.c.lookup_symbol == name, q.c.currency == currency)
        .order_by(*_newest_first(q))
        .limit(1)
        .scalar_subquery()
        for name in names
    ]
    resolved = union_all(
        *(select(name.label("symbol"), coin.label("coin_id"))
          for name, coin in zip(names, newest_coin, strict=True))
    ).cte("resolved")
    time_end = _param("time_end", UTCDateTime())

    if bucketed:
        # HistoryService bounds time_start by the `count` intervals the answer can hold.
        wanted = resolved
        in_range = []
    else:
        # `all`: no row older than the coin's count-th newest up to time_end is read, so the
        # range scanned follows `count`, not the length of the history.
        nth = q.alias("nth")
        nth_newest = (select(nth.c.fetched_at)
                      .where(nth.c.coin_id == resolved.c.coin_id, nth.c.currency == currency,
                             nth.c.fetched_at <= time_end)
                      .order_by(*_newest_first(nth))
                      .offset(_param("skip", Integer())).limit(1)
                      .scalar_subquery())
        # Fewer rows than count: every row up to time_end is kept.
        since = func.coalesce(nth_newest, _param("no_earlier", UTCDateTime()))
        wanted = select(resolved.c.symbol, resolved.c.coin_id, since.label("since")).cte("wanted")
        in_range = [q.c.fetched_at >= wanted.c.since]
    in_range += [q.c.coin_id == wanted.c.coin_id, q.c.currency == currency,
                 q.c.fetched_at <= time_end]
    if bounded_below:
        in_range.append(q.c.fetched_at >= _param("time_start", UTCDateTime()))
    point_columns = (q.c.id, q.c.fetched_at, q.c.price, q.c.volume_24h, q.c.market_cap,
                     q.c.quote_last_updated)
    if not bucketed:
        chosen = (select(wanted.c.symbol, *point_columns)
                  .join_from(wanted, q, and_(*in_range))
                  .subquery("chosen"))
    else:
        bucket = epoch_bucket(q.c.fetched_at, dialect, _param("interval_seconds", Integer()))
        ranked = (
            select(wanted.c.symbol, *point_columns,
                   func.row_number().over(partition_by=(wanted.c.symbol, bucket),
                                          order_by=_newest_first(q)).label("in_bucket"))
            .join_from(wanted, q, and_(*in_range))
            .subquery("ranked")
        )
        chosen = (select(*(c for c in ranked.c if c.name != "in_bucket"))
                  .where(ranked.c.in_bucket == 1)
                  .subquery("chosen"))
    kept = (
        select(*chosen.c,
               func.row_number().over(partition_by=chosen.c.symbol,
                                      order_by=_newest_first(chosen)).label("from_newest"))
        .subquery("kept")
    )
    return (
        select(wanted.c.symbol, wanted.c.coin_id, _COINS.c.name,
               _COINS.c.symbol.label("coin_symbol"), _COINS.c.slug, kept.c.fetched_at,
               kept.c.price, kept.c.volume_24h, kept.c.market_cap, kept.c.quote_last_updated)
        .select_from(wanted)
        .join(_COINS, _COINS.c.id == wanted.c.coin_id)
        .outerjoin(kept, and_(kept.c.symbol == wanted.c.symbol,
                              kept.c.from_newest <= _param("count", Integer())))
        .order_by(wanted.c.symbol, kept.c.fetched_at, kept.c.id)
    )


def history_parameters(query: HistoryQuery) -> dict[str, Any]:
    """The parameters of history_statement for `query`."""
    parameters: dict[str, Any] = {f"symbol_{i}": symbol for i, symbol in enumerate(query.symbols)}
    parameters.update(currency=query.currency, time_end=query.time_end, count=query.count)
    if query.time_start is not None:
        parameters["time_start"] = query.time_start
    if query.interval_seconds is not None:
        parameters["interval_seconds"] = query.interval_seconds
    else:
        parameters.update(skip=query.count - 1, no_earlier=_NO_EARLIER)
    return parameters


# Each prune batch ranks the rows of one week of one coin's history (a whole number of hours
# and of days, so windows align on both kinds of bucket): the work per batch stays bounded
# however long the history is. Ranking all of a coin's history per batch made a first prune
# of a year of minutely history take hours.
WINDOW_SECONDS = 7 * DAY


def prune_statement(dialect: str, bucket_seconds: int) -> Any:
    """One batch of one coin, one currency and one window: delete up to :batch rows in
    [:zone_from, :zone_before) that are not the newest of their epoch-aligned bucket among the
    rows in [:window_from, :window_before).

    The window is aligned on buckets and its end is at most the end of the zone's last bucket,
    so every bucket is ranked whole: one that straddles a cutoff keeps just its newest row,
    wherever it lies. Both the ranking and the DELETE name the coin, the currency and the range,
    so each is an index range scan of ix_quotes_coin_history: a batch costs what its window
    holds, whatever the size of the table."""
    q = _QUOTES
    coin_id, currency = _param("coin_id", BigInteger()), _param("currency", String())
    zone_from = _param("zone_from", UTCDateTime())
    zone_before = _param("zone_before", UTCDateTime())
    ranked = (
        select(q.c.id, q.c.fetched_at,
               func.row_number()
               .over(partition_by=epoch_bucket(q.c.fetched_at, dialect, bucket_seconds),
                     order_by=_newest_first(q))
               .label("position"))
        .where(q.c.coin_id == coin_id, q.c.currency == currency,
               q.c.fetched_at >= _param("window_from", UTCDateTime()),
               q.c.fetched_at < _param("window_before", UTCDateTime()))
        .subquery("ranked")
    )
    victims = (
        select(ranked.c.id)
        .where(ranked.c.position > 1, ranked.c.fetched_at >= zone_from,
               ranked.c.fetched_at < zone_before)
        .limit(_param("batch", Integer()))
    )
    # The range again on the DELETE itself: `id IN (...)` alone let PostgreSQL hash the victims
    # and read the whole table for them.
    return delete(q).where(q.c.coin_id == coin_id, q.c.currency == currency,
                           q.c.fetched_at >= zone_from, q.c.fetched_at < zone_before,
                           q.c.id.in_(victims.scalar_subquery()))


def prune_windows(oldest: datetime, zone_from: datetime,
                  rank_before: datetime) -> list[tuple[datetime, datetime]]:
    """Windows of WINDOW_SECONDS, aligned on the epoch (and so on every bucket), covering
    [max(oldest, zone_from), rank_before), newest first (a prune cut short has thinned the
    most-read range)."""
    start = epoch_seconds(max(oldest, zone_from)) // WINDOW_SECONDS * WINDOW_SECONDS
    end = epoch_seconds(rank_before)
    width = WINDOW_SECONDS
    windows = []
    while start < end:
        windows.append((from_epoch(start), from_epoch(min(start + width, end))))
        start += width
    return windows[::-1]


def _param(name: str, type_: Any = None) -> Any:
    return bindparam(name, type_=type_)


class SqlHistoryRepository(HistoryRepository):
    """The HistoryRepository port over the quotes table that SqlQuoteRepository appends to.

    Reads use the (coin_id, currency, fetched_at) index; thinning deletes in short
    transactions of a bounded size, so readers and writers never wait on it for long.
    """

    def __init__(self, session: SessionLike) -> None:
        self.session = session

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def history(self, query: HistoryQuery) -> dict[str, CoinHistory]:
        if not query.symbols:
            return {}
        try:
            with storage_errors("reading history failed", "read", cleanup=self._rollback):
                statement = history_statement(self._dialect(), len(query.symbols),
                                          query.interval_seconds is not None,
                                          query.time_start is not None)
                rows = self.session.execute(statement, history_parameters(query)).all()
        finally:
            self._end_read()
        return _to_histories(rows, query.currency)

    def prune(self, now: datetime, policy: RetentionPolicy, batch_size: int = 5000) -> PruneReport:
        hourly_from, daily_before = policy.cutoffs(now)
        dialect = self._dialect()
        zones = {
            # (bucket, rank among rows before, delete within [from, before))
            "hourly": (HOUR, _ceil(hourly_from, HOUR), daily_before, hourly_from),
            "daily": (DAY, _ceil(daily_before, DAY), from_epoch(0), daily_before),
        }
        deleted = {"hourly": 0, "daily": 0}
        batches = 0
        with storage_errors("pruning history failed", "write", cleanup=self._rollback):
            # Each coin's currencies and oldest fetch: once per prune, through the index.
            oldest = self.session.execute(
                select(_QUOTES.c.coin_id, _QUOTES.c.currency, func.min(_QUOTES.c.fetched_at))
                .group_by(_QUOTES.c.coin_id, _QUOTES.c.currency)
                .order_by(_QUOTES.c.coin_id, _QUOTES.c.currency)).all()
            self.session.commit()
            for zone, (seconds, rank_before, zone_from, zone_before) in zones.items():
                statement = prune_statement(dialect, seconds)
                for coin_id, currency, first in oldest:
                    for window_from, window_before in prune_windows(first, zone_from,
                                                                    rank_before):
                        while True:
                            result = self.session.execute(statement, {
                                "coin_id": coin_id, "currency": currency,
                                "window_from": window_from, "window_before": window_before,
                                "zone_from": zone_from, "zone_before": zone_before,
                                "batch": batch_size,
                            })
                            self.session.commit()  # one short transaction per batch
                            batches += 1
                            deleted[zone] += result.rowcount  # type: ignore[attr-defined]
                            if result.rowcount < batch_size:  # type: ignore[attr-defined]
                                break
        report = PruneReport(deleted["hourly"], deleted["daily"], batches)
        logger.info("history pruned: %d hourly and %d daily rows deleted in %d batches",
                    report.deleted_hourly, report.deleted_daily, report.batches)
        return report

    def _end_read(self) -> None:
        # A read leaves no transaction open: an idle-in-transaction session holds back vacuum.
        self._rollback()

    def _rollback(self) -> None:
        rollback_quietly(self.session)


def _ceil(moment: datetime, seconds: int) -> datetime:
    """The epoch-aligned boundary of `seconds` after `moment`: the end of its bucket."""
    return from_epoch((epoch_seconds(moment) // seconds + 1) * seconds)


def _to_histories(rows: Sequence[Any], currency: str) -> dict[str, CoinHistory]:
    coins: dict[str, Coin] = {}
    points: dict[str, list[HistoryPoint]] = {}
    # Positional unpacking, in history_statement's column order: the hot loop of a request.
    for symbol, coin_id, name, coin_symbol, slug, fetched_at, price, volume, cap, updated in rows:
        if coin_id is None:
            continue  # never stored
        if symbol not in coins:
            coins[symbol] = Coin(id=coin_id, name=name, symbol=coin_symbol, slug=slug)
            points[symbol] = []
        if fetched_at is not None:
            points[symbol].append(HistoryPoint(fetched_at, currency, price, updated, volume, cap))
    return {symbol: CoinHistory(coin, tuple(points[symbol])) for symbol, coin in coins.items()}
