"""Which answers to symbol lists become edge documents, and for how long (bounded against junk)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from src.adapters.cache.edge_documents import EdgeDocuments
from src.adapters.cache.keys import edge_list_name
from src.domain.model import QuoteAnswer, Source

# What one process may write per minute, in bytes of list documents. A list seen before in this
# process (a dashboard polling) has the larger budget; a list seen for the first time (which a
# client cycling through distinct lists produces every time) the smaller. Documents live no
# longer than their quotes' entries (CACHE_TTL_SECONDS, 60 s by default), so the junk one
# process can hold in memcached is about FIRST_SIGHT_BYTES_PER_MINUTE * TTL / 60 s.
FIRST_SIGHT_BYTES_PER_MINUTE = 1 << 20
REPEAT_BYTES_PER_MINUTE = 16 << 20
SEEN_LISTS = 10_000  # list names remembered per process (up to 180 bytes); forgotten at once


@dataclass(frozen=True, slots=True)
class ListTicket:
    """A list request that may become a document: its symbols and the epochs read before it."""

    symbols: tuple[str, ...]
    name: str  # edge_list_name
    epochs: dict[str, str]


class EdgeLists:
    """Writes the app's answer to a list of several symbols as an edge document, when nginx
    could serve it in the app's place (README "Deploy", the edge): no `convert`, no unknown
    symbol, every quote from the cache and fresh; it lives until the first of its quotes'
    entries expires or stops being fresh, whichever is sooner; the epochs read before the
    quotes were (`ticket`) let EdgeDocuments take it away when a quote was cached anew
    meanwhile.
    Bounded: bytes written per minute (FIRST_SIGHT_/REPEAT_BYTES_PER_MINUTE above).
    """

    def __init__(self, documents: EdgeDocuments | None, *, max_age_seconds: float | None,
                 now: Callable[[], float] = time.time,
                 first_sight_bytes: int = FIRST_SIGHT_BYTES_PER_MINUTE,
                 repeat_bytes: int = REPEAT_BYTES_PER_MINUTE,
                 seen_lists: int = SEEN_LISTS) -> None:
        self._documents = documents
        self._max_age_seconds = max_age_seconds
        self._now = now
        self._budget = FixedWindowRateLimiter(MemoryStorage())
        self._first = RateLimitItemPerMinute(first_sight_bytes)
        self._repeat = RateLimitItemPerMinute(repeat_bytes)
        self._seen: set[str] = set()
        self._seen_lists = seen_lists
        self._lock = threading.Lock()
        self.written = 0  # documents written by this process (tests and the benchmark read it)

    def ticket(self, symbols: Sequence[str], convert: str | None) -> ListTicket | None:
        """Call before answering: a ticket when this request's answer may become a document."""
        if self._documents is None or convert is not None or len(symbols) < 2:
            return None
        epochs = self._documents.epochs()
        if not epochs:
            return None
        symbols = tuple(symbols)
        return ListTicket(symbols, edge_list_name(symbols), epochs)

    def publish(self, ticket: ListTicket | None, answer: QuoteAnswer, body: str) -> None:
        """Write `body`, the app's answer to the ticket's request, when the edge may serve it."""
        if ticket is None or self._documents is None:
            return
        expire = self._lifetime(ticket, answer)
        if expire < 1 or not self._within_budget(ticket.name, len(body)):
            return
        self._documents.publish_list(ticket.epochs, ticket.name, body, expire)
        self.written += 1

    def _lifetime(self, ticket: ListTicket, answer: QuoteAnswer) -> int:
        if answer.convert is not None or answer.unknown_symbols \
                or tuple(answer.quotes) != ticket.symbols:
            return 0
        now = self._now()
        seconds = math.inf
        for served in answer.quotes.values():
            quote = served.coin_quote
            if served.source is not Source.CACHE or served.stale or quote.cached_until is None:
                return 0
            seconds = min(seconds, quote.cached_until.timestamp() - now)
            if self._max_age_seconds is not None:
                seconds = min(seconds, quote.fetched_at.timestamp() + self._max_age_seconds - now)
        return math.floor(seconds)  # never a second past an entry or a quote's freshness

    def _within_budget(self, name: str, size: int) -> bool:
        with self._lock:
            seen = name in self._seen
            if not seen:
                if len(self._seen) >= self._seen_lists:
                    self._seen.clear()
                self._seen.add(name)
        item = self._repeat if seen else self._first
        return self._budget.hit(item, "repeat" if seen else "first", cost=size)
