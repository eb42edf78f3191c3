"""Ready-to-serve quote answers for nginx's memcached module, written to every memcached server."""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from pymemcache.client.base import PooledClient
from pymemcache.exceptions import MemcacheError, MemcacheServerError

from src.adapters.cache.keys import edge_epoch_key, edge_key, edge_list_key, edge_lists_key
from src.adapters.cache.memcached import TextSerde, host_port, server_name
from src.adapters.metrics import CACHE_ERRORS
from src.domain.model import CoinQuote

logger = logging.getLogger(__name__)

# Renders one symbol's quote as the exact body of the app's answer from the cache.
EdgeRenderer = Callable[[str, CoinQuote], str]


class EdgeDocuments:
    """Writes each cached quote's answer as plain text (flag 0) under `edge_key`, with the
    quote's own lifetime, to EVERY memcached server; and the answers to symbol lists
    (`publish_list`) under the epoch each server holds.

    nginx's memcached upstream picks a server by its own balancing, not by pymemcache's
    rendezvous hashing, so every server holds every document and any of them can answer.
    Writes are fire-and-forget (noreply): the document is an optimisation, and a failed write
    only sends that symbol's requests to the app. A server that fails is skipped for
    `dead_seconds`, so an outage costs one short timeout, not one per write.

    A list's document must never be older than its quotes' entries, yet nginx reads it in one
    lookup. So: caching a newly fetched quote (one fetched within its entry's lifetime: a
    re-cache of an older stored quote is not new), or taking a coin's document away, gives every
    server a new epoch, after the entries are written, then takes that server's register of list
    documents (compare and swap)
    and deletes every one listed. A list writer reads the epochs before the quotes (`epochs`),
    writes its document, registers it, and reads the epoch again: changed, it deletes its own
    document (registered after the register was taken, nobody else would). Either way no list
    written from a replaced quote survives the change by more than those few round trips.
    """

    def __init__(self, servers: Iterable[str], render: EdgeRenderer, *, namespace: str,
                 timeout: float = 0.25, dead_seconds: float = 10.0,
                 max_age_seconds: float | None = None,
                 now: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._render = render
        self.namespace = namespace
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
        new = False
        for symbol, quote in quotes.items():
            expire = 0 if quote is None else self._lifetime(quote, ttl_seconds, now)
            key = edge_key(self.namespace, symbol)
            if quote is None or expire < 1:  # memcached would keep a 0 forever
                gone.append(key)
            else:
                documents.setdefault(expire, {})[key] = self._render(symbol, quote)
            new = new or (quote is not None and quote.fetched_at.timestamp() > now - ttl_seconds)
        epoch = secrets.token_hex(6) if new else None
        for server, client in self._live():
            try:
                for expire, batch in documents.items():
                    client.set_many(batch, expire=expire, noreply=True)
                # A document taken away (a coin now unknown) is a change as a new quote is: the
                # lists holding it go, and an answer read before it cannot restore it. A symbol
                # that had none (a never-seen one, the usual unknown) changes nothing.
                taken = False
                if gone:
                    taken = bool(client.get_many(gone))
                    client.delete_many(gone, noreply=True)
                if epoch or taken:  # acknowledged: a lost one would leave older lists in place
                    client.set(edge_epoch_key(self.namespace), epoch or secrets.token_hex(6),
                               expire=0, noreply=False)
                    self._drop_lists(client)
            except (MemcacheError, OSError) as exc:
                self._failed(server, self._clock(), exc)

    def epochs(self) -> dict[str, str]:
        """The epoch each live server holds now (one made where none is); never raises.

        Read it before reading the quotes a list document will hold (see the class)."""
        key = edge_epoch_key(self.namespace)
        found: dict[str, str] = {}
        for server, client in self._live():
            try:
                epoch = client.get(key)
                if epoch is None:  # a new or restarted server: one epoch wins, whoever adds it
                    client.add(key, secrets.token_hex(6), expire=0, noreply=False)
                    epoch = client.get(key)
            except (MemcacheError, OSError) as exc:
                self._failed(server, self._clock(), exc)
                continue
            if epoch is not None:
                found[server] = epoch
        return found

    def publish_list(self, epochs: Mapping[str, str], name: str, body: str,
                     expire: int) -> None:
        """Write one list's answer to each server whose epoch was read before its quotes were,
        and register it there; never raises. See the class for the order and why."""
        key = edge_list_key(self.namespace, name)
        for server, client in self._live():
            epoch = epochs.get(server)
            if epoch is None:
                continue
            try:
                # Acknowledged: the pool may check what follows on another connection.
                client.set(key, body, expire=expire, noreply=False)
                if not self._register(client, key) \
                        or client.get(edge_epoch_key(self.namespace)) != epoch:
                    client.delete(key, noreply=False)
            except (MemcacheError, OSError) as exc:
                self._failed(server, self._clock(), exc)

    def restore(self, epochs: Mapping[str, str], symbol: str, body: str, expire: int) -> None:
        """Write one coin's answer to each server whose epoch was read before its quote was and
        which has no document for it (gone from a full memcached); never raises. Only where none
        is: the document written with a newer quote stays. A new epoch in between (a quote cached
        anew) takes the document away, whichever write it holds: a later answer restores it."""
        key = edge_key(self.namespace, symbol)
        for server, client in self._live():
            epoch = epochs.get(server)
            if epoch is None:
                continue
            try:
                if client.add(key, body, expire=expire, noreply=False) \
                        and client.get(edge_epoch_key(self.namespace)) != epoch:
                    client.delete(key, noreply=False)
            except (MemcacheError, OSError) as exc:
                self._failed(server, self._clock(), exc)

    def _register(self, client: PooledClient, key: str) -> bool:
        register, entry = edge_lists_key(self.namespace), key + " "
        for _ in range(2):
            try:
                if client.append(register, entry, noreply=False) \
                        or client.add(register, entry, expire=0, noreply=False):
                    return True
            except MemcacheServerError:  # the register is full (1 MB): start it afresh
                self._drop_lists(client)
        return False

    def _drop_lists(self, client: PooledClient) -> None:
        """Take the register (compare and swap) and delete every list document it names."""
        register = edge_lists_key(self.namespace)
        for _ in range(20):  # a swap fails only when a list was registered in between
            listed, token = client.gets(register)
            if listed is None:
                return
            if client.cas(register, "", token, expire=0, noreply=False):
                ours = edge_list_key(self.namespace, "")  # anything else there is not ours
                documents = [key for key in listed.split() if key.startswith(ours)]
                if documents:
                    client.delete_many(documents, noreply=False)
                return
        CACHE_ERRORS.labels("edge").inc()
        logger.warning("the edge's list register kept changing; its lists stay until they expire")

    def _live(self) -> list[tuple[str, PooledClient]]:
        clock = self._clock()
        return [(server, client) for server, client in self.clients.items()
                if self._dead_until.get(server, 0.0) <= clock]

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
