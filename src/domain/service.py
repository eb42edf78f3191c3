"""The retrieval rules: cache -> database (re-cache) -> provider (store, cache); conversion."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from src.domain.errors import ProviderError, ProviderUnavailable, StorageError, UnknownSymbols
from src.domain.model import CoinQuote, Quote, QuoteAnswer, ServedQuote, Source
from src.domain.ports import Clock, QuoteCache, QuoteProvider, QuoteRepository

logger = logging.getLogger(__name__)


class QuoteService:
    """Answers quote requests for many symbols at once, applying the rules to each symbol.

    Per request: one cache multi-get; one database read for the cache misses (what it finds is
    cached again); one provider call for the rest (stored, then cached). A conversion costs one
    more provider call and is never cached or stored.
    """

    def __init__(
        self,
        *,
        provider: QuoteProvider,
        repository: QuoteRepository,
        cache: QuoteCache,
        clock: Clock,
        base_currency: str = "USD",
        cache_ttl_seconds: int = 60,
        max_age: timedelta | None = None,
    ) -> None:
        self.provider = provider
        self.repository = repository
        self.cache = cache
        self.clock = clock
        self.base_currency = base_currency
        self.cache_ttl_seconds = cache_ttl_seconds
        self.max_age = max_age

    def get_quotes(self, symbols: Sequence[str], convert: str | None = None) -> QuoteAnswer:
        """Return the quotes of `symbols` (normalised, distinct), converted when `convert` is set.

        Raises UnknownSymbols when none of them exists, and the provider's errors when the
        provider is needed and fails (unless a stale stored quote can stand in for every symbol).
        """
        served: dict[str, ServedQuote] = {}

        cached = self.cache.get_many(symbols, self.base_currency)
        for symbol, coin_quote in cached.items():
            served[symbol] = ServedQuote(coin_quote, Source.CACHE)

        missing = [s for s in symbols if s not in served]
        stale: dict[str, CoinQuote] = {}
        if missing:
            fresh, stale = self._split_by_age(self._read_stored(missing))
            if fresh:
                self.cache.set_many(fresh, self.cache_ttl_seconds)
            for symbol, coin_quote in fresh.items():
                served[symbol] = ServedQuote(coin_quote, Source.DATABASE)
            missing = [s for s in missing if s not in served]

        unknown: tuple[str, ...] = ()
        if missing:
            try:
                fetched = self.provider.latest_by_symbols(missing, self.base_currency)
            except (ProviderUnavailable, ProviderError):
                if not stale or any(s not in stale for s in missing):
                    raise
                logger.warning("provider failed; serving %d stale stored quote(s)", len(missing))
                fetched = {}
                for symbol in missing:
                    served[symbol] = ServedQuote(stale[symbol], Source.DATABASE, stale=True)
            else:
                if fetched:
                    self._store(fetched)
                    self.cache.set_many(fetched, self.cache_ttl_seconds)
                for symbol, coin_quote in fetched.items():
                    served[symbol] = ServedQuote(coin_quote, Source.PROVIDER)
                unknown = tuple(s for s in missing if s not in fetched)

        if not served:
            raise UnknownSymbols(unknown)
        ordered = {s: served[s] for s in symbols if s in served}
        if convert is not None:
            ordered = self._convert(ordered, convert)
        return QuoteAnswer(quotes=ordered, unknown_symbols=unknown)

    def _read_stored(self, symbols: list[str]) -> dict[str, CoinQuote]:
        try:
            return self.repository.newest(symbols, self.base_currency)
        except StorageError:
            logger.exception("database read failed; asking the provider instead")
            return {}

    def _store(self, fetched: dict[str, CoinQuote]) -> None:
        try:
            self.repository.add(fetched)
        except StorageError:
            # The answer is still served and cached; only the history row is lost.
            logger.exception("database write failed; %d quote(s) not kept", len(fetched))

    def _split_by_age(
        self, stored: dict[str, CoinQuote]
    ) -> tuple[dict[str, CoinQuote], dict[str, CoinQuote]]:
        """Split stored quotes into those young enough to serve and those that count as missing."""
        if self.max_age is None:
            return stored, {}
        oldest_allowed = self.clock.now() - self.max_age
        fresh = {s: q for s, q in stored.items() if q.fetched_at >= oldest_allowed}
        stale = {s: q for s, q in stored.items() if s not in fresh}
        return fresh, stale

    def _convert(self, served: dict[str, ServedQuote], currency: str) -> dict[str, ServedQuote]:
        if currency == self.base_currency:
            return {s: replace(q, converted=q.coin_quote.quote) for s, q in served.items()}
        coin_ids = list(dict.fromkeys(q.coin_quote.coin.id for q in served.values()))
        converted: dict[int, Quote] = self.provider.latest_by_ids(coin_ids, currency)
        return {
            s: replace(q, converted=converted.get(q.coin_quote.coin.id)) for s, q in served.items()
        }
