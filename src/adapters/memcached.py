"""The QuoteCache port on Flask-Caching: memcached through pymemcache, or the in-process cache."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import mmh3
from flask_caching import Cache
from flask_caching.backends.memcache import MemcachedCache
from pymemcache import serde
from pymemcache.client.hash import HashClient
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError

from src.adapters.codec import coin_quote_from_data, coin_quote_to_data
from src.adapters.metrics import CACHE_ERRORS
from src.domain.errors import StorageError
from src.domain.model import CoinQuote
from src.domain.ports import QuoteCache

logger = logging.getLogger(__name__)

KEY_VERSION = "v1"
_KEY_PART = re.compile(r"[A-Z0-9_-]{1,64}")  # a sha1 hex digest is 40
_CACHE_ERRORS = (MemcacheError, OSError)


def _murmur3(key: str, seed: int = 0) -> int:
    return mmh3.hash(key, seed, signed=False)


class MurmurRendezvousHash(RendezvousHash):
    """pymemcache's rendezvous hashing with the C murmur3 of `mmh3`: the same placement as
    pymemcache's pure-Python murmur3 (same values), about 80 times cheaper per key."""

    def __init__(self, nodes=None, seed=0, hash_function=_murmur3) -> None:
        super().__init__(nodes, seed, hash_function)


class ObservedHashClient(HashClient):
    """HashClient that counts server failures and logs an outage at most once a minute."""

    log_interval = 60.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_logged: dict[object, float] = {}

    def _mark_failed_server(self, server) -> None:
        CACHE_ERRORS.labels("memcached").inc()
        now = time.monotonic()
        if now - self._last_logged.get(server, -self.log_interval) >= self.log_interval:
            self._last_logged[server] = now
            logger.warning("memcached %s is failing; requests go on without it", _server_name(server))
        super()._mark_failed_server(server)


def _server_name(server) -> str:
    return ":".join(str(part) for part in server) if isinstance(server, tuple) else str(server)


class PymemcacheCache(MemcachedCache):
    """Flask-Caching backend on a pymemcache HashClient (Flask-Caching ships none for pymemcache).

    Several servers are sharded by rendezvous hashing. Errors on reads become misses and a dead
    server is skipped for `dead_timeout` seconds, so an outage costs short timeouts, not failures.
    """

    @classmethod
    def factory(cls, app, config, args, kwargs):  # Flask-Caching calls it with these four
        client = ObservedHashClient(
            [_host_port(server) for server in config["CACHE_MEMCACHED_SERVERS"]],
            hasher=MurmurRendezvousHash,
            serde=serde.pickle_serde,  # we store str only; this serde returns it as str
            connect_timeout=config.get("CACHE_MEMCACHED_CONNECT_TIMEOUT", 0.25),
            timeout=config.get("CACHE_MEMCACHED_TIMEOUT", 0.25),
            ignore_exc=True,
            default_noreply=False,  # with noreply, writes always "succeed" and has() lies
            use_pooling=True,  # the plain client is not thread-safe
            retry_attempts=1,
            retry_timeout=0.5,
            dead_timeout=config.get("CACHE_MEMCACHED_DEAD_TIMEOUT", 10),
        )
        kwargs.update(key_prefix=config["CACHE_KEY_PREFIX"])
        return cls(client, **kwargs)


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def cache_key(currency: str, symbol: str, kind: str = "quote") -> str:
    """The one place cache keys are built: `quote:v1:USD:BTC` (only A-Z 0-9 : _ -)."""
    if not (_KEY_PART.fullmatch(currency) and _KEY_PART.fullmatch(symbol)):
        raise ValueError("cache key parts must be normalised symbols")
    return f"{kind}:{KEY_VERSION}:{currency}:{symbol}"


def _fetch_key(symbols: Sequence[str], currency: str) -> str:
    digest = hashlib.sha1(",".join(sorted(symbols)).encode(), usedforsecurity=False).hexdigest()
    return cache_key(currency, digest.upper(), kind="fetch")


_UNKNOWN = '{"unknown":true}'


class FlaskCachingQuoteCache(QuoteCache):
    """Quotes as JSON text under `cache_key`, through a Flask-Caching `Cache` (any backend).

    A cache that cannot be reached answers misses and drops writes; it never raises.
    """

    def __init__(self, cache: Cache, memo_entries: int = 4_096) -> None:
        self.cache = cache
        # Decoding a cached quote costs more than fetching it; the same text decodes to the same
        # value, so keep the last decodings (bounded). Equal text means an equal quote.
        self._decoded: dict[str, CoinQuote] = {}
        self._memo_entries = memo_entries

    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        if not symbols:
            return {}
        keys = [cache_key(currency, s) for s in symbols]
        try:
            values = self.cache.get_many(*keys)
        except _CACHE_ERRORS as exc:
            CACHE_ERRORS.labels("get").inc()
            logger.warning("cache read failed (%s); treating as misses", type(exc).__name__)
            return {}
        found: dict[str, CoinQuote | None] = {}
        for symbol, value in zip(symbols, values, strict=True):
            if value is None:
                continue
            if value == _UNKNOWN:
                found[symbol] = None
            elif (coin_quote := self._decode(value)) is not None:
                found[symbol] = coin_quote
        return found

    def _decode(self, value: Any) -> CoinQuote | None:
        if isinstance(value, bytes):
            value = value.decode()
        coin_quote = self._decoded.get(value)
        if coin_quote is None:
            coin_quote = _decode(value)
            if coin_quote is not None:
                if len(self._decoded) >= self._memo_entries:
                    self._decoded.clear()
                self._decoded[value] = coin_quote
        return coin_quote

    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str, ttl_seconds: int) -> None:
        if not entries:
            return
        mapping = {
            cache_key(currency, symbol): _UNKNOWN if entry is None
            else json.dumps(coin_quote_to_data(entry), separators=(",", ":"))
            for symbol, entry in entries.items()
        }
        try:
            stored = self.cache.set_many(mapping, timeout=ttl_seconds)
        except _CACHE_ERRORS as exc:
            CACHE_ERRORS.labels("set").inc()
            logger.warning("cache write failed (%s); %d entries not cached", type(exc).__name__, len(mapping))
            return
        if len(stored) != len(mapping):
            CACHE_ERRORS.labels("set").inc()
            logger.debug("cache write lost %d of %d entries", len(mapping) - len(stored), len(mapping))

    def claim_fetch(self, symbols: Sequence[str], currency: str, ttl_seconds: int) -> bool:
        key = _fetch_key(symbols, currency)
        try:
            if self.cache.add(key, "1", timeout=max(1, int(ttl_seconds))):
                return True
            # `add` also fails when the cache is down; only a visible claim means "wait".
            return self.cache.get(key) is None
        except _CACHE_ERRORS:
            CACHE_ERRORS.labels("lock").inc()
            return True

    def fetch_in_progress(self, symbols: Sequence[str], currency: str) -> bool:
        try:
            return self.cache.get(_fetch_key(symbols, currency)) is not None
        except _CACHE_ERRORS:
            CACHE_ERRORS.labels("lock").inc()
            return False

    def release_fetch(self, symbols: Sequence[str], currency: str) -> None:
        try:
            self.cache.delete(_fetch_key(symbols, currency))
        except _CACHE_ERRORS:
            CACHE_ERRORS.labels("lock").inc()

    def ping(self) -> None:
        try:
            ok = self.cache.set("ping", "1", timeout=5)
        except _CACHE_ERRORS as exc:
            raise StorageError(f"cache unreachable ({type(exc).__name__})") from exc
        if not ok:
            raise StorageError("cache unreachable (write refused)")


def _decode(value: str) -> CoinQuote | None:
    try:
        return coin_quote_from_data(json.loads(value))
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.warning("ignoring an unreadable cache entry")
        return None
