"""Which answers become edge documents from the request path, and for how long (bounded).

Lists: every answer nginx could serve in the app's place. One coin: its document is written with
its quote, so only one that went missing (evicted from a full memcached) is restored from here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage
from limits.strategies import FixedWindowRateLimiter

from src.adapters.cache.edge_documents import EdgeDocuments
from src.adapters.cache.keys import edge_list_name
from src.adapters.metrics import CACHE_ERRORS
from src.domain.model import QuoteAnswer, Source

logger = logging.getLogger(__name__)

# What one process may write per minute, in bytes of list documents. A list seen before in this
# process (a dashboard polling) has the larger budget; a list seen for the first time (which a
# client cycling through distinct lists produces every time) the smaller. Documents live no
# longer than their quotes' entries (CACHE_TTL_SECONDS, 60 s by default), so the junk one
# process can hold in memcached is about FIRST_SIGHT_BYTES_PER_MINUTE * TTL / 60 s.
FIRST_SIGHT_BYTES_PER_MINUTE = 1 << 20
REPEAT_BYTES_PER_MINUTE = 16 << 20
SEEN_LISTS = 10_000  # list names remembered per process (up to 180 bytes); forgotten at once
# A request reaching the app for an answer nginx could serve means its document is missing: the
# same answer is written at most once a second per process, however many requests come meanwhile
# (direct traffic to the app included), so it comes back within a second and the budget lasts.
REWRITE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class EdgeTicket:
    """A request that may become a document: its symbols and the epochs read before it."""

    symbols: tuple[str, ...]
    name: str  # edge_list_name, or the one symbol
    epochs: dict[str, str]


class EdgeAnswers:
    """Writes the app's answer as an edge document when nginx could serve it in the app's place
    (README "Deploy", the edge): no `convert`, no unknown symbol, every quote from the cache and
    fresh; it lives until the first of its quotes' entries expires or stops being fresh,
    whichever is sooner; the epochs read before the quotes were (`ticket`) let EdgeDocuments
    take it away when a quote was cached anew meanwhile. A list's document is written over
    whatever is there; one coin's only where none is (the one written with a newer quote wins).
    Bounded: one write a second per answer and process (REWRITE_SECONDS), and for lists the
    bytes written per minute (FIRST_SIGHT_/REPEAT_BYTES_PER_MINUTE above).
    """

    def __init__(self, documents: EdgeDocuments | None, *, max_age_seconds: float | None,
                 now: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic,
                 first_sight_bytes: int = FIRST_SIGHT_BYTES_PER_MINUTE,
                 repeat_bytes: int = REPEAT_BYTES_PER_MINUTE,
                 seen_lists: int = SEEN_LISTS,
                 rewrite_seconds: float = REWRITE_SECONDS,
                 budget_storage: Storage | None = None) -> None:
        self._documents = documents
        self._max_age_seconds = max_age_seconds
        self._now = now
        self._clock = clock  # the rewrite interval's
        # Used under self._lock only: MemoryStorage is not thread-safe (two threads scheduling
        # its expiry timer at once start the same thread twice: a RuntimeError in a request).
        self._budget = FixedWindowRateLimiter(budget_storage or MemoryStorage())
        self._first = RateLimitItemPerMinute(first_sight_bytes)
        self._repeat = RateLimitItemPerMinute(repeat_bytes)
        self._seen: set[str] = set()
        self._seen_lists = seen_lists
        self._rewrite_seconds = rewrite_seconds
        self._written_at: dict[str, float] = {}  # _mark -> when this process took its write
        self._lock = threading.Lock()
        self.written = 0  # documents written by this process (tests and the benchmark read it)

    def ticket(self, symbols: Sequence[str], convert: str | None) -> EdgeTicket | None:
        """Call before answering: a ticket when this request's answer may become a document."""
        if self._documents is None or convert is not None or not symbols:
            return None
        symbols = tuple(symbols)
        if len(symbols) == 1:
            # The most common request, and its document is normally there: one try a second,
            # whatever the answer turns out to be, and no round trip in between.
            if not self._reserve(symbols[0]):
                return None
            epochs = self._documents.epochs()
            return EdgeTicket(symbols, symbols[0], epochs) if epochs else None
        epochs = self._documents.epochs()
        ticket = EdgeTicket(symbols, edge_list_name(symbols), epochs)
        # Under a new epoch (which took the lists away) the same list is due again at once.
        return ticket if epochs and self._reserve(_mark(ticket)) else None

    def publish(self, ticket: EdgeTicket | None, answer: QuoteAnswer, body: str) -> None:
        """Write `body`, the app's answer to the ticket's request, when the edge may serve it.

        Never raises: the document is nginx's shortcut, and the answer goes out without it."""
        if ticket is None or self._documents is None:
            return
        try:
            self._publish(self._documents, ticket, answer, body)
        except Exception:  # a defect here must not turn the answer into a 500
            CACHE_ERRORS.labels("edge").inc()
            logger.exception("the edge document of %s was not written", ticket.name)

    def _publish(self, documents: EdgeDocuments, ticket: EdgeTicket, answer: QuoteAnswer,
                 body: str) -> None:
        expire = self._lifetime(ticket, answer)
        if len(ticket.symbols) == 1:
            # The document written with the quote, where it went missing: no junk to bound.
            if expire >= 1:
                documents.restore(ticket.epochs, ticket.name, body, expire)
                self.written += 1
            return
        if expire < 1 or not self._within_budget(ticket.name, len(body)):
            self._release(_mark(ticket))  # a list is due again at its next answer
            return
        documents.publish_list(ticket.epochs, ticket.name, body, expire)
        self.written += 1

    def _lifetime(self, ticket: EdgeTicket, answer: QuoteAnswer) -> int:
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

    def _reserve(self, mark: str) -> bool:
        """Take the rewrite interval's one write of `mark` (`_mark`), if it is not taken."""
        with self._lock:
            clock = self._clock()
            last = self._written_at.get(mark)
            if last is not None and clock - last < self._rewrite_seconds:
                return False
            if len(self._written_at) >= self._seen_lists:
                self._written_at.clear()
            self._written_at[mark] = clock
        return True

    def _release(self, mark: str) -> None:
        with self._lock:
            self._written_at.pop(mark, None)

    def _within_budget(self, name: str, size: int) -> bool:
        with self._lock:
            seen = name in self._seen
            if not seen:
                if len(self._seen) >= self._seen_lists:
                    self._seen.clear()
                self._seen.add(name)
            item = self._repeat if seen else self._first
            return self._budget.hit(item, "repeat" if seen else "first", cost=size)


def _mark(ticket: EdgeTicket) -> str:
    """What one write stands for: a coin's document; a list's under the epochs it was written in
    (a new one deletes it, so it is not the same document any more)."""
    if len(ticket.symbols) == 1:
        return ticket.name
    return ticket.name + " " + " ".join(sorted(ticket.epochs.values()))
