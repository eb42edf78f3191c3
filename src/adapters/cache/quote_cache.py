"""The QuoteCache port over a Flask-Caching backend (memcached via pymemcache, or in-process)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from flask_caching import Cache
from pymemcache.exceptions import MemcacheError

from src.adapters.cache import values as cache_values
from src.adapters.cache.keys import cache_key, currency_key, fetch_key
from src.adapters.cache.rejects import reject_value
from src.adapters.metrics import CACHE_ERRORS
from src.domain.errors import StorageError
from src.domain.model import CoinQuote, FetchFailure
from src.domain.ports import QuoteCache

logger = logging.getLogger(__name__)

_CACHE_ERRORS = (MemcacheError, OSError)


class ClaimingBackend(Protocol):
    """What the port needs beyond Flask-Caching's API (PymemcacheCache and LocalCache have it)."""

    def add_many(self, mapping: Mapping[str, str], timeout: float) -> list[str]: ...
    def swap_many(self, changes: Mapping[str, tuple[str, str | None]],
                  timeout: float) -> list[str]: ...
    def server_errors(self) -> dict[str, str]: ...


class EdgePublisher(Protocol):
    """Writes ready-to-serve documents of quotes being cached (EdgeDocuments)."""

    def publish(self, quotes: Mapping[str, CoinQuote | None], ttl_seconds: float) -> None: ...


class FlaskCachingQuoteCache(QuoteCache):
    """Quotes as JSON text under `cache_key`, through a Flask-Caching `Cache` whose backend is
    PymemcacheCache or LocalCache.

    A value under our keys that is not our JSON is a miss (counted, logged), never an error.
    A cache that cannot be reached answers misses and drops writes; it never raises but in
    `ping`. Fetch claims hold their owner's token; only that owner releases them (compare and
    swap), so a fetch that outlived its claim never releases the next fetcher's.
    """

    def __init__(self, cache: Any, memo_entries: int = 4_096, *,
                 edge: EdgePublisher | None = None,
                 now: Callable[[], float] = time.time) -> None:
        # Flask-Caching's own operations go through `cache` (observable in tests): a backend
        # (as src/bootstrap.py builds it), or Flask-Caching's `Cache` in front of one.
        self.cache: Any = cache
        # The claim operations Flask-Caching's API does not have.
        backend: Any = cache.cache if isinstance(cache, Cache) else cache
        self.backend: ClaimingBackend = backend
        # nginx's fast path reads what `edge` writes: each quote's answer, beside the quote.
        self.edge = edge
        self._now = now  # Unix seconds, for the expiry recorded in each quote entry
        # Decoding a cached quote costs more than fetching it; the same text decodes to the same
        # value, so keep the last decodings (bounded). Equal text means an equal quote.
        self._decoded: dict[str, CoinQuote] = {}
        self._memo_entries = memo_entries
        # Likewise the encoding: a database hit re-caches a quote equal to the last one, and
        # encoding it (Decimals, times, JSON) was a quarter of that path's CPU.
        self._encoded: dict[CoinQuote, str] = {}

    def _get_many(self, keys: list[str], operation: str) -> list[Any]:
        try:
            return self.cache.get_many(*keys)
        except _CACHE_ERRORS as exc:
            CACHE_ERRORS.labels(operation).inc()
            logger.warning("cache read failed (%s); treating as misses", type(exc).__name__)
            return [None] * len(keys)

    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        if not symbols:
            return {}
        values = self._get_many([cache_key(currency, s) for s in symbols], "get")
        found: dict[str, CoinQuote | None] = {}
        for symbol, value in zip(symbols, values, strict=True):
            if value is None:
                continue
            if value == cache_values.NEGATIVE_ENTRY:
                found[symbol] = None
            elif (coin_quote := self._decode(value)) is not None:
                found[symbol] = coin_quote
        return found

    def _decode(self, value: Any) -> CoinQuote | None:
        coin_quote = self._decoded.get(value) if isinstance(value, str) else None
        if coin_quote is None:
            try:
                coin_quote = cache_values.decode_quote(value)
            except ValueError:
                reject_value("not a cached quote")
                return None
            if coin_quote is not None:
                if len(self._decoded) >= self._memo_entries:
                    self._decoded.clear()
                self._decoded[value] = coin_quote
        return coin_quote

    def _encode(self, entry: CoinQuote | None, expires_at: float) -> str:
        if entry is None:
            return cache_values.NEGATIVE_ENTRY
        text = self._encoded.get(entry)
        if text is None:
            text = cache_values.quote_text(entry)
            if len(self._encoded) >= self._memo_entries:
                self._encoded.clear()
            self._encoded[entry] = text
        return cache_values.encode_quote(entry, expires_at, text)

    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str,
                 ttl_seconds: int) -> None:
        if not entries:
            return
        expires_at = self._now() + ttl_seconds
        mapping = {cache_key(currency, symbol): self._encode(entry, expires_at)
                   for symbol, entry in entries.items()}
        try:
            self._write(mapping, ttl_seconds)
        finally:
            if self.edge is not None:
                # After the entries: a new quote's new epoch must follow its entry (EdgeDocuments).
                # A negative entry takes its document away.
                self.edge.publish(entries, ttl_seconds)

    def _write(self, mapping: dict[str, str], ttl_seconds: int) -> None:
        try:
            stored = self.cache.set_many(mapping, timeout=ttl_seconds)
        except _CACHE_ERRORS as exc:
            CACHE_ERRORS.labels("set").inc()
            logger.warning("cache write failed (%s); %d entries not cached",
                           type(exc).__name__, len(mapping))
            return
        if len(stored) != len(mapping):
            CACHE_ERRORS.labels("set").inc()
            logger.debug("cache write lost %d of %d entries",
                         len(mapping) - len(stored), len(mapping))

    def claim_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                      ttl_seconds: float) -> tuple[str, ...]:
        keys = {fetch_key(currency, s): s for s in symbols}
        if not keys:
            return ()
        claim = cache_values.encode_claim(owner)
        try:
            added = set(self.backend.add_many(dict.fromkeys(keys, claim), ttl_seconds))
            refused = [key for key in keys if key not in added]
            # `add` also fails when the cache is down; only a visible claim means "wait".
            visible = self.cache.get_many(*refused) if refused else []
        except _CACHE_ERRORS:
            CACHE_ERRORS.labels("lock").inc()
            return tuple(keys.values())
        # Our own claim under a refused key: the add landed but its reply was lost (a timeout);
        # waiting on it would stall every process on these symbols until it expires.
        held = {key for key, value in zip(refused, visible, strict=True)
                if value != claim and _is_claim(value)}
        return tuple(symbol for key, symbol in keys.items() if key not in held)

    def fetch_states(self, symbols: Sequence[str], currency: str) -> dict[str, FetchFailure | None]:
        if not symbols:
            return {}
        states: dict[str, FetchFailure | None] = {}
        values = self._get_many([fetch_key(currency, s) for s in symbols], "lock")
        for symbol, value in zip(symbols, values, strict=True):
            if value is None:
                continue
            try:
                states[symbol] = cache_values.decode_claim(value)
            except ValueError:
                reject_value("not a fetch claim")
        return states

    def release_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                        failure: FetchFailure | None = None,
                        failure_ttl_seconds: float = 5.0) -> None:
        if not symbols:
            return
        claim = cache_values.encode_claim(owner)
        note = None if failure is None else cache_values.encode_failure(owner, failure)
        try:
            self.backend.swap_many({fetch_key(currency, s): (claim, note) for s in symbols},
                                   failure_ttl_seconds)
        except _CACHE_ERRORS:
            CACHE_ERRORS.labels("lock").inc()

    def currency_known(self, currency: str) -> bool | None:
        value = self._get_many([currency_key(currency)], "get")[0]
        if value is None:
            return None
        try:
            return cache_values.decode_currency(value)
        except ValueError:
            reject_value("not a remembered currency")
            return None

    def remember_currency(self, currency: str, known: bool, ttl_seconds: int) -> None:
        try:
            self.cache.set(currency_key(currency), cache_values.encode_currency(known),
                           timeout=ttl_seconds)
        except _CACHE_ERRORS as exc:
            CACHE_ERRORS.labels("set").inc()
            logger.warning("cache write failed (%s); currency not remembered", type(exc).__name__)

    def ping(self) -> None:
        try:
            errors = self.backend.server_errors()
        except _CACHE_ERRORS as exc:
            raise StorageError(f"cache unreachable ({type(exc).__name__})") from exc
        if errors:
            raise StorageError("; ".join(f"memcached {server} {why}"
                                         for server, why in errors.items()))


def _is_claim(value: Any) -> bool:
    """A claim or failure note of ours; junk under a fetch key blocks nobody (reads as absent)."""
    if value is None:
        return False
    try:
        cache_values.decode_claim(value)
    except ValueError:
        reject_value("not a fetch claim")
        return False
    return True
