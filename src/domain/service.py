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

# Polling while another process fetches the same symbols: quick at first, then every 100 ms.
_WAIT_STEPS = (0.01, 0.02, 0.04, 0.08) + (0.1,) * 200


class QuoteService:
    """Answers quote requests for many symbols at once, applying the rules to each symbol.

    Per request: one cache multi-get; one database read for the cache misses (what it finds is
    cached again); one provider call for the rest (stored, then cached, unknown symbols as
    negative entries). Concurrent requests missing the same symbols wait for one fetch instead
    of each paying for it. A conversion costs one more provider call and is never cached or stored.
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
        fetch_wait_seconds: float = 10.0,
    ) -> None:
        self.provider = provider
        self.repository = repository
        self.cache = cache
        self.clock = clock
        self.base_currency = base_currency
        self.cache_ttl_seconds = cache_ttl_seconds
        self.max_age = max_age
        # Longer than one provider call may take, so a waiter outlasts the fetch it waits for.
        self.fetch_wait_seconds = fetch_wait_seconds

    def get_quotes(self, symbols: Sequence[str], convert: str | None = None) -> QuoteAnswer:
        """Return the quotes of `symbols` (normalised, distinct), converted when `convert` is set.

        Raises UnknownSymbols when none of them exists, and the provider's errors when the
        provider is needed and fails (unless a stale stored quote can stand in for every symbol).
        """
        served: dict[str, ServedQuote] = {}
        unknown: list[str] = []

        missing = self._take_cached(self.cache.get_many(symbols, self.base_currency), served, unknown, symbols)
        stale: dict[str, CoinQuote] = {}
        if missing:
            fresh, stale = self._split_by_age(self._read_stored(missing))
            if fresh:
                self.cache.set_many(fresh, self.base_currency, self.cache_ttl_seconds)
            for symbol, coin_quote in fresh.items():
                served[symbol] = ServedQuote(coin_quote, Source.DATABASE)
            missing = [s for s in missing if s not in served]
        if missing:
            self._fetch(missing, stale, served, unknown)

        if not served:
            raise UnknownSymbols(tuple(s for s in symbols if s in unknown))
        ordered = {s: served[s] for s in symbols if s in served}
        if convert is not None:
            ordered = self._convert(ordered, convert)
        return QuoteAnswer(quotes=ordered, unknown_symbols=tuple(s for s in symbols if s in unknown))

    def _take_cached(self, cached: dict[str, CoinQuote | None], served: dict[str, ServedQuote],
                     unknown: list[str], symbols: Sequence[str]) -> list[str]:
        """Record cache hits (quotes and negative entries); return the symbols still missing."""
        missing = []
        for symbol in symbols:
            if symbol not in cached:
                missing.append(symbol)
            elif cached[symbol] is None:
                unknown.append(symbol)
            else:
                served[symbol] = ServedQuote(cached[symbol], Source.CACHE)
        return missing

    def _fetch(self, missing: list[str], stale: dict[str, CoinQuote],
               served: dict[str, ServedQuote], unknown: list[str]) -> None:
        """Ask the provider for `missing` once across processes; store and cache the answer."""
        claim = list(missing)
        if not self.cache.claim_fetch(claim, self.base_currency, self.fetch_wait_seconds):
            missing = self._wait_for_other_fetch(missing, served, unknown)
            if missing:
                self._call_provider(missing, stale, served, unknown)
            return
        try:
            # Another process may have fetched, cached and released between our miss and our
            # claim: look again before paying for a call.
            cached = self.cache.get_many(missing, self.base_currency)
            missing = self._take_cached(cached, served, unknown, missing)
            if missing:
                self._call_provider(missing, stale, served, unknown)
        finally:
            self.cache.release_fetch(claim, self.base_currency)

    def _call_provider(self, missing: list[str], stale: dict[str, CoinQuote],
                       served: dict[str, ServedQuote], unknown: list[str]) -> None:
        try:
            fetched = self.provider.latest_by_symbols(missing, self.base_currency)
        except (ProviderUnavailable, ProviderError):
            if not stale or any(s not in stale for s in missing):
                raise
            logger.warning("provider failed; serving %d stale stored quote(s)", len(missing))
            for symbol in missing:
                served[symbol] = ServedQuote(stale[symbol], Source.DATABASE, stale=True)
            return
        not_found = [s for s in missing if s not in fetched]
        if fetched:
            self._store(fetched)
        entries: dict[str, CoinQuote | None] = {**fetched, **dict.fromkeys(not_found)}
        self.cache.set_many(entries, self.base_currency, self.cache_ttl_seconds)
        for symbol, coin_quote in fetched.items():
            served[symbol] = ServedQuote(coin_quote, Source.PROVIDER)
        unknown.extend(not_found)

    def _wait_for_other_fetch(self, missing: list[str], served: dict[str, ServedQuote],
                              unknown: list[str]) -> list[str]:
        """Poll the cache while another process fetches; return what is still missing after."""
        waited = 0.0
        for step in _WAIT_STEPS:
            if waited >= self.fetch_wait_seconds:
                break
            self.clock.sleep(step)
            waited += step
            cached = self.cache.get_many(missing, self.base_currency)
            missing = self._take_cached(cached, served, unknown, missing)
            if not missing or not self.cache.fetch_in_progress(missing, self.base_currency):
                break
        return missing

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
