"""Value objects of the quote domain, and symbol normalisation."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from src.domain.errors import InvalidCurrency, InvalidSymbol

MAX_SYMBOL_LENGTH = 20
MAX_SYMBOLS_PER_REQUEST = 100
# ASCII letters and digits only: these strings end up in cache keys, SQL parameters and
# CoinMarketCap URLs, so nothing else may pass (no look-alikes, no whitespace, no CR/LF).
_SYMBOL_RE = re.compile(r"[A-Za-z0-9]+", re.ASCII)


class Source(enum.StrEnum):
    """Where a coin's base quote came from for one request."""

    CACHE = "cache"
    DATABASE = "database"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class Quote:
    """Market figures of one coin in one currency."""

    currency: str
    price: Decimal
    last_updated: datetime
    volume_24h: Decimal | None = None
    volume_change_24h: Decimal | None = None
    market_cap: Decimal | None = None
    market_cap_dominance: Decimal | None = None
    fully_diluted_market_cap: Decimal | None = None
    percent_change_1h: Decimal | None = None
    percent_change_24h: Decimal | None = None
    percent_change_7d: Decimal | None = None
    percent_change_30d: Decimal | None = None
    percent_change_60d: Decimal | None = None
    percent_change_90d: Decimal | None = None


# The optional figures of a Quote, in declaration order (adapters map them one to one).
QUOTE_FIGURES = tuple(f.name for f in fields(Quote)
                      if f.name not in {"currency", "price", "last_updated"})


@dataclass(frozen=True, slots=True)
class Coin:
    """A cryptocurrency as CoinMarketCap describes it; `id` is its permanent identity."""

    id: int
    name: str
    symbol: str
    slug: str
    cmc_rank: int | None = None
    is_active: bool = True
    num_market_pairs: int | None = None
    circulating_supply: Decimal | None = None
    total_supply: Decimal | None = None
    max_supply: Decimal | None = None
    date_added: datetime | None = None
    last_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class CoinQuote:
    """A coin with its quote in the base currency, as fetched from the provider at `fetched_at`."""

    coin: Coin
    quote: Quote
    fetched_at: datetime
    # When the shared cache entry this came from expires (None: not read from the cache, or an
    # entry that did not record it); HTTP caching promises no longer than that.
    cached_until: datetime | None = field(default=None, compare=False)


K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Fetched(Generic[K, V]):
    """What one provider call brought back, and what it cost.

    `quotes` by what was asked for (a symbol, or a coin id); `credits` is what the provider says
    it charged for the call (None: it did not say); `coins` how many coins it returned per key
    (a symbol returns every coin that bears it: namesakes); `unreadable` the keys it answered
    with nothing usable (malformed, or no price in the currency): a failed fetch of those, not
    an unknown symbol.
    """

    quotes: dict[K, V] = field(default_factory=dict)
    credits: int | None = None
    coins: Mapping[K, int] = field(default_factory=dict)
    unreadable: tuple[K, ...] = ()


@dataclass(frozen=True, slots=True)
class ServedQuote:
    """One coin of an answer: the base quote, where it came from, and an optional conversion."""

    coin_quote: CoinQuote
    source: Source
    converted: Quote | None = None
    stale: bool = False


class Purpose(enum.StrEnum):
    """Why a CoinMarketCap call is made; the credit governor spends in this order of priority."""

    REQUEST = "request"  # symbols with nothing stored (or too old), asked for by a client
    REFRESH = "refresh"  # refresh-ahead of recently requested symbols
    CONVERT = "convert"  # a live conversion, at most CONVERT_CREDIT_SHARE of the day


@dataclass(frozen=True, slots=True)
class Plan:
    """What the CoinMarketCap plan allows; `source` is "key_info", "configured" or "default"."""

    daily_credits: int
    calls_per_minute: int
    source: str


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Why a fetch of some symbols failed, left by the process that tried for those waiting on it.

    `kind` is "unavailable", "timeout" or "error" (the domain error it stands for); `message`
    is our own text (never CoinMarketCap's), `retry_after` seconds when known.
    """

    kind: str
    message: str
    retry_after: float | None = None
    upstream_code: int | None = None


@dataclass(frozen=True, slots=True)
class QuoteAnswer:
    """The answer to one request: served coins keyed by requested symbol, and unknown symbols.

    `convert` is the conversion currency asked for (None: none); a served coin whose
    `converted` is None then had no quote in it in the provider's answer. `reuse_seconds` is
    how long a client may reuse the answer (src/domain/freshness.py; not part of its value).
    """

    quotes: dict[str, ServedQuote] = field(default_factory=dict)
    unknown_symbols: tuple[str, ...] = ()
    convert: str | None = None
    reuse_seconds: int = field(default=0, compare=False)

    @property
    def unconverted_symbols(self) -> tuple[str, ...]:
        """Served symbols without a quote in `convert` (empty when nothing was converted)."""
        if self.convert is None:
            return ()
        return tuple(s for s, q in self.quotes.items() if q.converted is None)


def normalise_symbol(raw: str) -> str:
    """Return `raw` as an upper-case symbol, or raise InvalidSymbol saying what is wrong."""
    if not raw:
        raise InvalidSymbol("symbol must not be empty")
    if len(raw) > MAX_SYMBOL_LENGTH:
        raise InvalidSymbol(f"symbol is longer than {MAX_SYMBOL_LENGTH} characters")
    if not _SYMBOL_RE.fullmatch(raw):
        raise InvalidSymbol(
            f"symbol {_shown(raw)} may contain only the letters A-Z, a-z and the digits 0-9"
        )
    return raw.upper()


def parse_symbols(raw: str) -> tuple[str, ...]:
    """Split a comma-separated symbol list, normalise each and collapse duplicates (order kept)."""
    if raw is None or not raw.strip():
        raise InvalidSymbol("symbol must name at least one cryptocurrency, e.g. BTC or BTC,ETH")
    parts = raw.split(",")
    # Checked before looking at each part, so a huge list costs one comparison.
    if len(parts) > MAX_SYMBOLS_PER_REQUEST:
        raise InvalidSymbol(f"at most {MAX_SYMBOLS_PER_REQUEST} symbols per request")
    return tuple(dict.fromkeys(normalise_symbol(part) for part in parts))


def normalise_currency(raw: str) -> str:
    """Return `raw` as an upper-case currency symbol (fiat or crypto), or raise InvalidCurrency."""
    try:
        return normalise_symbol(raw)
    except InvalidSymbol as exc:
        raise InvalidCurrency(str(exc).replace("symbol", "convert", 1)) from None


def _shown(raw: str) -> str:
    """A safe, short rendering of user input for error messages."""
    text = raw if len(raw) <= 24 else raw[:24] + "..."
    return ascii(text)


@dataclass(frozen=True, slots=True)
class RefreshRound:
    """What one refresh round did: `symbols` to refresh, `refreshed` of them answered, in
    `calls` upstream calls; `stopped` says why it ended early ("budget", "provider", "lease")."""

    started_at: datetime
    finished_at: datetime
    symbols: int
    refreshed: int
    calls: int
    stopped: str | None = None
