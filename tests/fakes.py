"""Hand-written fakes of the domain ports. They keep state in public attributes for assertions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from src.domain.deadline import Deadline
from src.domain.errors import InvalidCurrency, LimitVerdict, ProviderTimeout, StorageError
from src.domain.history import (
    CoinHistory,
    HistoryQuery,
    HistoryRepository,
    PruneReport,
    RetentionPolicy,
    newest_per_interval,
)
from src.domain.model import Coin, CoinQuote, Fetched, FetchFailure, Quote
from src.domain.ports import Clock, QuoteCache, QuoteProvider, QuoteRepository
from src.domain.spending import call_cost

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def coin_quote(
    symbol: str,
    coin_id: int,
    price: str,
    *,
    fetched_at: datetime = T0,
    currency: str = "USD",
    name: str | None = None,
) -> CoinQuote:
    """A CoinQuote with just enough detail for the rules."""
    return CoinQuote(
        coin=Coin(id=coin_id, name=name or symbol.title(), symbol=symbol, slug=symbol.lower(),
                  cmc_rank=coin_id, circulating_supply=Decimal("1000")),
        quote=Quote(currency=currency, price=Decimal(price), last_updated=fetched_at,
                    market_cap=Decimal(price) * 1000),
        fetched_at=fetched_at,
    )


class FixedClock(Clock):
    """Time stands still until a test (or a fake's simulated work, or a sleep) moves it.

    `schedule(after, action)` runs `action` once the clock has moved `after` seconds further:
    the way a unit test plays another process's part while the service waits.
    """

    def __init__(self, now: datetime = T0) -> None:
        self.current = now
        self.slept: list[float] = []
        self.pending: list[tuple[datetime, Callable[[], object]]] = []

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        due = [entry for entry in self.pending if entry[0] <= self.current]
        self.pending = [entry for entry in self.pending if entry[0] > self.current]
        for _, action in sorted(due, key=lambda entry: entry[0]):
            action()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def schedule(self, after_seconds: float, action: Callable[[], object]) -> None:
        self.pending.append((self.current + timedelta(seconds=after_seconds), action))


class FakeQuoteProvider(QuoteProvider):
    """Answers from `market` (symbol -> USD CoinQuote) and `rates` (currency -> USD per unit).

    Each call takes `latency_seconds` on `clock` (when given); a call whose deadline ends first
    moves the clock to the deadline and raises ProviderTimeout, as the real adapter does.
    """

    def __init__(self, market: Mapping[str, CoinQuote] | None = None,
                 rates: Mapping[str, Decimal] | None = None,
                 fail_with: Exception | None = None, *,
                 clock: FixedClock | None = None, latency_seconds: float = 0.0) -> None:
        self.market = dict(market or {})
        self.rates = dict(rates or {"USD": Decimal(1), "EUR": Decimal("1.08")})
        self.fail_with = fail_with
        self.clock = clock
        self.latency_seconds = latency_seconds
        self.calls: list[tuple[str, tuple, str]] = []
        self.deadlines: list[Deadline | None] = []
        self.budgets: list[float | None] = []  # each call's deadline.remaining() when it began
        self.namesakes: dict[str, int] = {}  # coins a symbol returns, when more than one
        self.unreadable: set[str] = set()  # symbols answered with nothing readable

    def fetch_by_symbols(self, symbols: Sequence[str], currency: str, *,
                         deadline: Deadline | None = None) -> Fetched[str, CoinQuote]:
        self._answer(("symbols", tuple(symbols), currency), deadline)
        found = {s: self.market[s] for s in symbols if s in self.market and s not in self.unreadable}
        coins = {s: self.namesakes.get(s, 1) for s in symbols if s in self.market}
        # As CoinMarketCap: one credit per 100 coins returned; nothing for "no valid symbol".
        credits = call_cost(sum(coins.values())) if coins else 0
        return Fetched(found, credits, coins, tuple(s for s in symbols if s in self.unreadable
                                                   and s in self.market))

    def fetch_by_ids(self, coin_ids: Sequence[int], currency: str, *,
                     deadline: Deadline | None = None) -> Fetched[int, Quote]:
        self._answer(("ids", tuple(coin_ids), currency), deadline)
        if currency not in self.rates:
            raise InvalidCurrency(f"unknown convert currency {currency}")
        by_id = {q.coin.id: q.quote for q in self.market.values()}
        converted = {
            i: replace(by_id[i], currency=currency, price=by_id[i].price / self.rates[currency])
            for i in coin_ids if i in by_id
        }
        return Fetched(converted, call_cost(len(converted)), dict.fromkeys(converted, 1))

    def _answer(self, call: tuple[str, tuple, str], deadline: Deadline | None) -> None:
        """Record the call, spend its time, and fail as scripted."""
        self.calls.append(call)
        self.deadlines.append(deadline)
        self.budgets.append(None if deadline is None else deadline.remaining())
        if deadline is not None and deadline.expired:
            raise ProviderTimeout("deadline passed before the call")
        if self.clock is not None and self.latency_seconds:
            if deadline is not None and deadline.remaining() < self.latency_seconds:
                self.clock.advance(deadline.remaining())
                raise ProviderTimeout("the provider did not answer before the deadline")
            self.clock.advance(self.latency_seconds)
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class InMemoryQuoteRepository(QuoteRepository):
    """History as a list of (symbol, CoinQuote); newest by fetched_at wins."""

    rows: list[tuple[str, CoinQuote]] = field(default_factory=list)
    reads: list[tuple[str, ...]] = field(default_factory=list)
    writes: list[dict[str, CoinQuote]] = field(default_factory=list)
    fail_with: Exception | None = None

    def newest(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        self.reads.append(tuple(symbols))
        if self.fail_with is not None:
            raise self.fail_with
        found: dict[str, CoinQuote] = {}
        for symbol, q in self.rows:
            if symbol in symbols and q.quote.currency == currency:
                if symbol not in found or q.fetched_at >= found[symbol].fetched_at:
                    found[symbol] = q
        return found

    def add(self, quotes: Mapping[str, CoinQuote]) -> None:
        self.writes.append(dict(quotes))
        if self.fail_with is not None:
            raise self.fail_with
        self.rows.extend(quotes.items())

    def ping(self) -> None:
        if self.fail_with is not None:
            raise StorageError("fake database down")


@dataclass
class InMemoryQuoteCache(QuoteCache):
    """Entries keyed by (currency, symbol) with an expiry read from `clock`; None = unknown.

    Claims are per (currency, symbol): (owner, failure note or None, expiry). Currencies are
    remembered as (known, expiry). `down` makes it behave like an unreachable cache.
    """

    clock: Clock = field(default_factory=FixedClock)
    entries: dict[tuple[str, str], tuple[CoinQuote | None, datetime]] = field(default_factory=dict)
    claims: dict[tuple[str, str], tuple[str, FetchFailure | None, datetime]] = field(default_factory=dict)
    currencies: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    gets: list[tuple[str, ...]] = field(default_factory=list)
    sets: list[tuple[dict[str, CoinQuote | None], int]] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)  # every port method called, in order (work counts)
    down: bool = False

    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        self.ops.append("get_many")
        self.gets.append(tuple(symbols))
        if self.down:
            return {}
        now = self.clock.now()
        # A hit carries its entry's expiry, as the real adapter's does (HTTP max-age).
        return {
            s: entry[0] if entry[0] is None else replace(entry[0], cached_until=entry[1])
            for s in symbols
            if (entry := self.entries.get((currency, s))) is not None and entry[1] > now
        }

    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str, ttl_seconds: int) -> None:
        self.ops.append("set_many")
        self.sets.append((dict(entries), ttl_seconds))
        if self.down:
            return
        expires = self.clock.now() + timedelta(seconds=ttl_seconds)
        for symbol, entry in entries.items():
            self.entries[(currency, symbol)] = (entry, expires)

    def put(self, quotes: Mapping[str, CoinQuote], ttl_seconds: int = 60) -> None:
        """Arrange a cache hit without recording a write."""
        expires = self.clock.now() + timedelta(seconds=ttl_seconds)
        for symbol, q in quotes.items():
            self.entries[(q.quote.currency, symbol)] = (q, expires)

    def _live_claim(self, currency: str, symbol: str) -> tuple[str, FetchFailure | None, datetime] | None:
        claim = self.claims.get((currency, symbol))
        if claim is None or claim[2] <= self.clock.now():
            return None
        return claim

    def claim_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                      ttl_seconds: float) -> tuple[str, ...]:
        self.ops.append("claim_fetches")
        if self.down:
            return tuple(symbols)
        expires = self.clock.now() + timedelta(seconds=ttl_seconds)
        won = []
        for symbol in symbols:
            if self._live_claim(currency, symbol) is None:
                self.claims[(currency, symbol)] = (owner, None, expires)
                won.append(symbol)
        return tuple(won)

    def fetch_states(self, symbols: Sequence[str], currency: str) -> dict[str, FetchFailure | None]:
        self.ops.append("fetch_states")
        if self.down:
            return {}
        return {s: claim[1] for s in symbols if (claim := self._live_claim(currency, s)) is not None}

    def release_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                        failure: FetchFailure | None = None,
                        failure_ttl_seconds: float = 5.0) -> None:
        self.ops.append("release_fetches")
        if self.down:
            return
        for symbol in symbols:
            claim = self._live_claim(currency, symbol)
            if claim is None or claim[0] != owner:
                continue
            if failure is None:
                del self.claims[(currency, symbol)]
            else:
                expires = self.clock.now() + timedelta(seconds=failure_ttl_seconds)
                self.claims[(currency, symbol)] = (owner, failure, expires)

    def currency_known(self, currency: str) -> bool | None:
        self.ops.append("currency_known")
        if self.down:
            return None
        remembered = self.currencies.get(currency)
        if remembered is None or remembered[1] <= self.clock.now():
            return None
        return remembered[0]

    def remember_currency(self, currency: str, known: bool, ttl_seconds: int) -> None:
        self.ops.append("remember_currency")
        if self.down:
            return
        self.currencies[currency] = (known, self.clock.now() + timedelta(seconds=ttl_seconds))

    def ping(self) -> None:
        self.ops.append("ping")
        if self.down:
            raise StorageError("fake cache down")


@dataclass
class InMemoryHistoryRepository(HistoryRepository):
    """History as (symbol, CoinQuote) fetches in storage order, bucketed by the domain's rule."""

    rows: list[tuple[str, CoinQuote]] = field(default_factory=list)
    queries: list[HistoryQuery] = field(default_factory=list)
    prunes: list[tuple[datetime, RetentionPolicy, int]] = field(default_factory=list)
    fail_with: Exception | None = None

    def history(self, query: HistoryQuery) -> dict[str, CoinHistory]:
        self.queries.append(query)
        if self.fail_with is not None:
            raise self.fail_with
        found: dict[str, CoinHistory] = {}
        for symbol in query.symbols:
            fetches = [q for s, q in self.rows if s == symbol and q.quote.currency == query.currency]
            if not fetches:
                continue
            coin = max(fetches, key=lambda q: q.fetched_at).coin
            mine = [(q.fetched_at, q.quote) for _, q in self.rows
                    if q.coin.id == coin.id and q.quote.currency == query.currency]
            found[symbol] = CoinHistory(coin, newest_per_interval(mine, query))
        return found

    def prune(self, now: datetime, policy: RetentionPolicy, batch_size: int = 5000) -> PruneReport:
        self.prunes.append((now, policy, batch_size))
        if self.fail_with is not None:
            raise self.fail_with
        return PruneReport()


def verdict(code: int, retry_after: float | None = None) -> LimitVerdict:
    """CoinMarketCap's limit verdict `code` (1008-1011) as the adapter raises it."""
    from src.adapters.coinmarketcap.answers import LIMIT_SCOPES

    return LimitVerdict("CoinMarketCap limit", LIMIT_SCOPES[code], retry_after, code)
