"""The ports the quote service needs. Adapters and test fakes subclass them explicitly.

Every port is batch-shaped: one call carries all symbols of a request, so a request costs one
cache round trip, one database query and one upstream call at most.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from src.domain.model import CoinQuote, Quote


class QuoteProvider(Protocol):
    """The upstream market-data source (CoinMarketCap)."""

    @abc.abstractmethod
    def latest_by_symbols(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        """Fetch the latest quotes of `symbols` (normalised) in `currency`, in one call.

        Returns a map from requested symbol to quote; symbols that do not exist are absent.
        When several coins share a symbol, the active one with the best rank is returned.
        Raises ProviderUnavailable (down, rate-limited), ProviderTimeout, or ProviderError
        (unusable answer, rejected credentials).
        """

    @abc.abstractmethod
    def latest_by_ids(self, coin_ids: Sequence[int], currency: str) -> dict[int, Quote]:
        """Fetch the latest quotes of the coins `coin_ids` in `currency`, in one call.

        Returns a map from coin id to its quote in `currency`; ids the provider does not know
        are absent. Raises InvalidCurrency when `currency` does not exist, otherwise as
        `latest_by_symbols`.
        """


class QuoteRepository(Protocol):
    """Durable storage of every fetched quote (history); serves the newest per symbol."""

    @abc.abstractmethod
    def newest(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        """Return the newest stored quote in `currency` of each symbol that has one, in one query.

        Raises StorageError when the storage cannot be read.
        """

    @abc.abstractmethod
    def add(self, quotes: Mapping[str, CoinQuote]) -> None:
        """Store `quotes` (keyed by the symbol they answer) as new history, in one transaction.

        Raises StorageError when nothing could be stored.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the storage answers now."""


class QuoteCache(Protocol):
    """Short-lived shared cache of base-currency quotes. Converted quotes never enter it."""

    @abc.abstractmethod
    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        """Return the cached quotes among `symbols`, in one round trip.

        A cache that cannot be reached answers with no hits: it never raises.
        """

    @abc.abstractmethod
    def set_many(self, quotes: Mapping[str, CoinQuote], ttl_seconds: int) -> None:
        """Cache `quotes` (keyed by symbol, each in its own quote currency) for `ttl_seconds`.

        A cache that cannot be reached loses the write: it never raises.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the cache answers now."""


class Clock(Protocol):
    """The current time, injected so that the domain never reads the system clock itself."""

    @abc.abstractmethod
    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
