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
    """Short-lived shared cache of base-currency quotes. Converted quotes never enter it.

    An entry is a quote, or None for a symbol known not to exist (a negative entry), so that
    repeated junk costs neither a database query nor CoinMarketCap credits. A cache that cannot
    be reached answers misses and drops writes: none of these methods raises except `ping`.
    """

    @abc.abstractmethod
    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        """Return the cached entries among `symbols` (absent: a miss), in one round trip."""

    @abc.abstractmethod
    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str, ttl_seconds: int) -> None:
        """Cache `entries` (keyed by symbol; None marks an unknown symbol) for `ttl_seconds`."""

    @abc.abstractmethod
    def claim_fetch(self, symbols: Sequence[str], currency: str, ttl_seconds: int) -> bool:
        """Claim the right to fetch `symbols` from the provider, across processes.

        Returns False only when another fetch of the same symbols is under way; True when the
        claim is ours, or when the cache cannot tell (then everyone may fetch).
        """

    @abc.abstractmethod
    def fetch_in_progress(self, symbols: Sequence[str], currency: str) -> bool:
        """Whether a claim on `symbols` is held (False when the cache cannot tell)."""

    @abc.abstractmethod
    def release_fetch(self, symbols: Sequence[str], currency: str) -> None:
        """Release a claim taken with `claim_fetch`."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the cache answers now."""


class Clock(Protocol):
    """The current time, injected so that the domain never reads the system clock itself."""

    @abc.abstractmethod
    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a fake clock just moves on)."""
