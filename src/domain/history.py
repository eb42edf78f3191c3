"""Price history from stored fetches: parameters, epoch-aligned intervals, thinning, the port."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from src.domain.errors import (
    InvalidRequest,
    StorageError,
    Unavailable,
    UnknownSymbols,
)
from src.domain.model import Coin, Quote
from src.domain.ports import Clock

# Interval name -> length in seconds; None ("all") is every stored fetch.
INTERVALS: dict[str, int | None] = {
    "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600, "12h": 43200,
    "1d": 86400, "7d": 604800, "all": None,
}
DEFAULT_INTERVAL = "5m"
DEFAULT_COUNT = 10
MAX_COUNT = 10_000
MAX_HISTORY_SYMBOLS = 10
HOUR = 3600
DAY = 86400

_UNIX_SECONDS_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?", re.ASCII)
_SPACED_OFFSET_RE = re.compile(r"[0-9] [0-9]{2}(:?[0-9]{2})?$", re.ASCII)
_MAX_TIME_TEXT = 40
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z, the calendar's first second


class InvalidHistoryParameter(InvalidRequest):
    """A history parameter is malformed; `parameter` names it and the message starts with it."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


class HistoryUnavailable(Unavailable):
    """The stored history cannot be read now (the database failed): a 503, since history has
    no fallback. Not a ProviderUnavailable: CoinMarketCap has no part in it."""


def parse_interval(raw: str, parameter: str = "interval") -> int | None:
    """The length in seconds of the interval named `raw` (None for "all")."""
    if raw not in INTERVALS:
        raise InvalidHistoryParameter(parameter, f"must be one of {', '.join(INTERVALS)}")
    return INTERVALS[raw]


def parse_time(raw: str, parameter: str) -> datetime:
    """ISO 8601 (UTC when it has no offset) or Unix seconds, as an aware UTC datetime."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > _MAX_TIME_TEXT or not text.isascii():
        raise InvalidHistoryParameter(
            parameter, "must be an ISO 8601 time (e.g. 2026-11-26T03:00:00Z) or Unix seconds")
    if _UNIX_SECONDS_RE.fullmatch(text):
        try:
            return from_epoch(Decimal(text))
        except (OverflowError, ValueError, InvalidOperation):
            raise InvalidHistoryParameter(parameter, "is out of range") from None
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        hint = ""
        if _SPACED_OFFSET_RE.search(text):
            # An unencoded '+' in a query string arrives as a space.
            hint = "; a '+' offset must be written %2B in a URL"
        raise InvalidHistoryParameter(
            parameter, "must be an ISO 8601 time (e.g. 2026-11-26T03:00:00Z) or Unix seconds" + hint
        ) from None


def from_epoch(seconds: Decimal | int) -> datetime:
    """Unix seconds (exact, microseconds kept) as an aware UTC datetime."""
    whole = int(seconds)
    micro = int((Decimal(seconds) - whole) * 1_000_000)
    return _EPOCH + timedelta(seconds=whole, microseconds=micro)


def epoch_seconds(moment: datetime) -> int:
    """Whole Unix seconds of an aware time, rounded down (what both SQL dialects compute)."""
    delta = moment - _EPOCH
    return delta.days * DAY + delta.seconds


def bucket_of(moment: datetime, interval_seconds: int) -> int:
    """The epoch-aligned interval holding `moment`: integer epoch seconds // interval."""
    return epoch_seconds(moment) // interval_seconds


def earliest_start(time_end: datetime, interval_seconds: int, count: int) -> datetime:
    """The start of the oldest of the `count` intervals that end with the one holding
    `time_end`: a history request reads no fetch older, so that its cost follows what it can
    return, not how much history is stored (an index range scan, never the whole history)."""
    start = (bucket_of(time_end, interval_seconds) - count + 1) * interval_seconds
    return from_epoch(max(start, _FIRST_SECOND))


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """What one history request asks for; `time_end` is inclusive, like `time_start`."""

    symbols: tuple[str, ...]
    currency: str
    time_end: datetime
    time_start: datetime | None = None
    interval_seconds: int | None = 300
    count: int = DEFAULT_COUNT


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The newest stored quote of one interval: `fetched_at` is when coinquote fetched it,
    `last_updated` when the provider updated it. Only the figures history serves (a full Quote
    per point cost more to build than the query took)."""

    fetched_at: datetime
    currency: str
    price: Decimal
    last_updated: datetime
    volume_24h: Decimal | None = None
    market_cap: Decimal | None = None

    @classmethod
    def of(cls, fetched_at: datetime, quote: Quote) -> HistoryPoint:
        return cls(fetched_at, quote.currency, quote.price, quote.last_updated,
                   quote.volume_24h, quote.market_cap)


@dataclass(frozen=True, slots=True)
class CoinHistory:
    """One coin's points, oldest first."""

    coin: Coin
    points: tuple[HistoryPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryAnswer:
    """History per requested symbol (request order), and the symbols never stored."""

    data: dict[str, CoinHistory] = field(default_factory=dict)
    unknown_symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Every fetch for `full_days`, then the newest per coin and hour up to `hourly_days`, then
    the newest per coin and day. Keeping the newest of each period keeps coarse answers."""

    full_days: int = 7
    hourly_days: int = 90

    def __post_init__(self) -> None:
        if not 0 < self.full_days <= self.hourly_days:
            raise ValueError("retention needs 0 < full_days <= hourly_days")

    def cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        """(hourly_from, daily_before): older than the first is thinned per hour, older than
        the second per day."""
        return now - timedelta(days=self.full_days), now - timedelta(days=self.hourly_days)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What one prune removed, and in how many short transactions."""

    deleted_hourly: int = 0
    deleted_daily: int = 0
    batches: int = 0

    @property
    def deleted(self) -> int:
        return self.deleted_hourly + self.deleted_daily


class HistoryRepository(abc.ABC):
    """Reads stored quote history in buckets, and thins it."""

    @abc.abstractmethod
    def history(self, query: HistoryQuery) -> dict[str, CoinHistory]:
        """Each requested symbol that has ever been stored in `query.currency`, with its points.

        A symbol means the coin of its newest stored row (the one /api/v1/quotes serves). Its
        points: per epoch-aligned interval of `query.interval_seconds` (every row when None),
        the newest row (by fetched_at, then insertion) with time_start <= fetched_at <=
        time_end; the `query.count` newest such points, oldest first. Symbols never stored are
        absent. One statement whatever the number of symbols. Raises StorageError.
        """

    @abc.abstractmethod
    def prune(self, now: datetime, policy: RetentionPolicy, batch_size: int = 5000) -> PruneReport:
        """Thin history older than the policy's cutoffs from `now`, per coin and currency,
        keeping the newest row of each hour, then of each day; in short transactions of at
        most `batch_size` deletions, never locking out readers or writers. Idempotent.
        Raises StorageError.
        """


def newest_per_interval(rows: Iterable[tuple[datetime, Quote]],
                        query: HistoryQuery) -> tuple[HistoryPoint, ...]:
    """The reference rule over one coin's rows in storage order (what the SQL computes)."""
    chosen: dict[object, tuple[datetime, int, Quote]] = {}
    for position, (fetched_at, quote) in enumerate(rows):
        if fetched_at > query.time_end or (query.time_start and fetched_at < query.time_start):
            continue
        seconds = query.interval_seconds
        key = position if seconds is None else bucket_of(fetched_at, seconds)
        if key not in chosen or (fetched_at, position) > chosen[key][:2]:
            chosen[key] = (fetched_at, position, quote)
    kept = sorted(chosen.values(), key=lambda entry: entry[:2])[-query.count:]
    return tuple(HistoryPoint.of(fetched_at, quote) for fetched_at, _, quote in kept)


class HistoryService:
    """Answers history requests from storage only (never the provider), and thins history."""

    def __init__(self, repository: HistoryRepository, clock: Clock, base_currency: str,
                 policy: RetentionPolicy | None = None) -> None:
        self.repository = repository
        self.clock = clock
        self.base_currency = base_currency
        self.policy = policy or RetentionPolicy()

    def get_history(self, symbols: Sequence[str], *, time_start: datetime | None = None,
                    time_end: datetime | None = None, interval: str = DEFAULT_INTERVAL,
                    count: int = DEFAULT_COUNT) -> HistoryAnswer:
        """History of `symbols` (normalised): per coin, the newest fetch of each of the `count`
        newest intervals in [time_start, time_end] that hold one (with interval `all`, the
        `count` newest fetches). Raises InvalidHistoryParameter, UnknownSymbols (none was ever
        stored) or HistoryUnavailable."""
        if len(symbols) > MAX_HISTORY_SYMBOLS:
            raise InvalidHistoryParameter("symbol",
                                          f"at most {MAX_HISTORY_SYMBOLS} symbols per request")
        if not 1 <= count <= MAX_COUNT:
            raise InvalidHistoryParameter("count", f"must be between 1 and {MAX_COUNT}")
        end = time_end or self.clock.now()
        if time_start is not None and time_start > end:
            shown = "now" if time_end is None else _iso(end)
            raise InvalidHistoryParameter("time_start",
                                          f"{_iso(time_start)} is after time_end ({shown})")
        seconds = parse_interval(interval)
        if seconds is not None:  # `all` is bounded per coin by the repository (its count rows)
            bound = earliest_start(end, seconds, count)
            time_start = bound if time_start is None else max(time_start, bound)
        query = HistoryQuery(tuple(symbols), self.base_currency, end, time_start, seconds, count)
        try:
            found = self.repository.history(query)
        except StorageError as exc:
            raise HistoryUnavailable("stored history cannot be read now", retry_after=5) from exc
        unknown = tuple(s for s in symbols if s not in found)
        if not found:
            raise UnknownSymbols(unknown)
        return HistoryAnswer({s: found[s] for s in symbols if s in found}, unknown)

    def prune(self, batch_size: int = 5000) -> PruneReport:
        """Thin stored history by the retention policy, as of now. Safe to run at any time,
        from any number of processes: a second run finds nothing more to remove."""
        return self.repository.prune(self.clock.now(), self.policy, batch_size)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
