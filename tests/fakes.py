"""Hand-written fakes of the domain ports. They keep state in public attributes for assertions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from src.domain.errors import InvalidCurrency, StorageError
from src.domain.model import Coin, CoinQuote, Quote
from src.domain.ports import Clock, QuoteCache, QuoteProvider, QuoteRepository

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
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class FakeQuoteProvider(QuoteProvider):
    """Answers from `market` (symbol -> USD CoinQuote) and `rates` (currency -> USD per unit)."""

    def __init__(self, market: Mapping[str, CoinQuote] | None = None,
                 rates: Mapping[str, Decimal] | None = None,
                 fail_with: Exception | None = None) -> None:
        self.market = dict(market or {})
        self.rates = dict(rates or {"USD": Decimal(1), "EUR": Decimal("1.08")})
        self.fail_with = fail_with
        self.calls: list[tuple[str, tuple, str]] = []

    def latest_by_symbols(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        self.calls.append(("symbols", tuple(symbols), currency))
        if self.fail_with is not None:
            raise self.fail_with
        return {s: self.market[s] for s in symbols if s in self.market}

    def latest_by_ids(self, coin_ids: Sequence[int], currency: str) -> dict[int, Quote]:
        self.calls.append(("ids", tuple(coin_ids), currency))
        if self.fail_with is not None:
            raise self.fail_with
        if currency not in self.rates:
            raise InvalidCurrency(f"unknown convert currency {currency}")
        by_id = {q.coin.id: q.quote for q in self.market.values()}
        return {
            i: replace(by_id[i], currency=currency, price=by_id[i].price / self.rates[currency])
            for i in coin_ids if i in by_id
        }


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
    """Entries keyed by (currency, symbol) with an expiry read from `clock`; None = unknown."""

    clock: Clock = field(default_factory=FixedClock)
    entries: dict[tuple[str, str], tuple[CoinQuote | None, datetime]] = field(default_factory=dict)
    claims: dict[tuple[str, tuple[str, ...]], datetime] = field(default_factory=dict)
    gets: list[tuple[str, ...]] = field(default_factory=list)
    sets: list[tuple[dict[str, CoinQuote | None], int]] = field(default_factory=list)
    down: bool = False

    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        self.gets.append(tuple(symbols))
        if self.down:
            return {}
        now = self.clock.now()
        return {
            s: entry[0]
            for s in symbols
            if (entry := self.entries.get((currency, s))) is not None and entry[1] > now
        }

    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str, ttl_seconds: int) -> None:
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

    def _claim_key(self, symbols: Sequence[str], currency: str) -> tuple[str, tuple[str, ...]]:
        return currency, tuple(sorted(symbols))

    def claim_fetch(self, symbols: Sequence[str], currency: str, ttl_seconds: int) -> bool:
        if self.down:
            return True
        key, now = self._claim_key(symbols, currency), self.clock.now()
        if key in self.claims and self.claims[key] > now:
            return False
        self.claims[key] = now + timedelta(seconds=ttl_seconds)
        return True

    def fetch_in_progress(self, symbols: Sequence[str], currency: str) -> bool:
        key = self._claim_key(symbols, currency)
        return not self.down and key in self.claims and self.claims[key] > self.clock.now()

    def release_fetch(self, symbols: Sequence[str], currency: str) -> None:
        self.claims.pop(self._claim_key(symbols, currency), None)

    def ping(self) -> None:
        if self.down:
            raise StorageError("fake cache down")
