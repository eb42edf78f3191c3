"""Ready-to-serve quote answers for nginx's memcached module, written to every memcached server."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheError

from src.adapters.cache.memcached import TextSerde, host_port, server_name
from src.adapters.metrics import CACHE_ERRORS
from src.domain.model import CoinQuote

logger = logging.getLogger(__name__)

# nginx builds this key itself (deploy/nginx.conf, `$coinquote_edge_key`): change both together.
EDGE_KEY_PREFIX = "coinquote-edge:v1:"

# Renders one symbol's quote as the exact body of the app's answer from the cache.
EdgeRenderer = Callable[[str, CoinQuote], str]


def edge_key(symbol: str) -> str:
    """The key nginx reads for `GET /api/v1/quotes?symbol=<symbol in any case>`."""
    return EDGE_KEY_PREFIX + symbol


class EdgeDocuments:
    """Writes each cached quote's answer as plain text (flag 0) under `edge_key`, with the
    quote's own lifetime, to EVERY memcached server.

    nginx's memcached upstream picks a server by its own balancing, not by pymemcache's
    rendezvous hashing, so every server holds every document and any of them can answer.
    Writes are fire-and-forget (noreply): the document is an optimisation, and a failed write
    only sends that symbol's requests to the app. A server that fails is skipped for
    `dead_seconds`, so an outage costs one short timeout, not one per write.
    """

    def __init__(self, servers: Iterable[str], render: EdgeRenderer, *,
                 timeout: float = 0.25, dead_seconds: float = 10.0,
                 max_age_seconds: float | None = None,
                 now: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._render = render
        self._max_age_seconds = max_age_seconds  # QUOTE_MAX_AGE_SECONDS: no document outlives it
        self._now = now  # Unix seconds, to compare with each quote's fetched_at
        self.clients = {  # server -> its own client (tests count the writes)
            server: PooledClient(host_port(server), serde=TextSerde(), connect_timeout=timeout,
                                 timeout=timeout, max_pool_size=8)
            for server in servers
        }
        self._dead_seconds = dead_seconds
        self._clock = clock
        self._dead_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def publish(self, quotes: Mapping[str, CoinQuote | None], ttl_seconds: float) -> None:
        """Write the document of each quote in `quotes` to every live server; never raises.

        A document lives `ttl_seconds` (the quote entry's lifetime), cut to what is left of its
        quote's freshness (`max_age_seconds`), whoever wrote the entry. A symbol now cached as
        unknown (None), or whose quote has less than a second of freshness left, loses its
        document instead: nginx must never answer what the app no longer would.
        """
        if not quotes:
            return
        now = self._now()
        documents: dict[int, dict[str, str]] = {}  # by lifetime in seconds
        gone: list[str] = []
        for symbol, quote in quotes.items():
            expire = 0 if quote is None else self._lifetime(quote, ttl_seconds, now)
            if quote is None or expire < 1:  # memcached would keep a 0 forever
                gone.append(edge_key(symbol))
            else:
                documents.setdefault(expire, {})[edge_key(symbol)] = self._render(symbol, quote)
        clock = self._clock()
        for server, client in self.clients.items():
            if self._dead_until.get(server, 0.0) > clock:
                continue
            try:
                for expire, batch in documents.items():
                    client.set_many(batch, expire=expire, noreply=True)
                if gone:
                    client.delete_many(gone, noreply=True)
            except (MemcacheError, OSError) as exc:
                self._failed(server, clock, exc)

    def _lifetime(self, quote: CoinQuote, ttl_seconds: float, now: float) -> int:
        seconds = ttl_seconds
        if self._max_age_seconds is not None:
            seconds = min(seconds, quote.fetched_at.timestamp() + self._max_age_seconds - now)
        return math.floor(seconds)  # never a second longer than the entry or the freshness

    def _failed(self, server: str, now: float, exc: Exception) -> None:
        CACHE_ERRORS.labels("edge").inc()
        with self._lock:
            if self._dead_until.get(server, 0.0) <= now:
                logger.warning("memcached %s refused an edge document (%s); skipping it for %g s",
                               server_name(server), type(exc).__name__, self._dead_seconds)
            self._dead_until[server] = now + self._dead_seconds
