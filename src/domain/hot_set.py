"""The hot set: symbols clients asked for lately, stalest stored quote first. A quotes call
carries them in the room its credits pay for anyway (src/domain/spending.py, room_in_call).

Read at most once per `memo_seconds` in a process, and only when a call is about to be made,
never on a cache hit: one request-log query and one repository query. What this process
fetches meanwhile is noted in the memo, so the next call carries others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

from src.domain.errors import StorageError
from src.domain.model import CoinQuote
from src.domain.ports import Clock, QuoteRepository, RequestLog

logger = logging.getLogger(__name__)

_EPOCH_AGO = timedelta(days=36_500)
# The most recently requested symbols read (their stored quotes too): a call carries 99 at most.
MAX_READ = 500


class HotSet:
    """Symbols requested within `window_seconds`, stalest stored quote first, and how many coins
    each symbol returns (namesakes), learned from the answers."""

    def __init__(self, request_log: RequestLog, repository: QuoteRepository, clock: Clock,
                 currency: str, *, window_seconds: float, memo_seconds: float = 5.0) -> None:
        self.request_log = request_log
        self.repository = repository
        self.clock = clock
        self.currency = currency
        self.window_seconds = window_seconds
        self.memo_seconds = memo_seconds
        self._lock = threading.Lock()
        self._memo: tuple[datetime, dict[str, datetime | None]] | None = None
        self._coins: dict[str, int] = {}

    def coins(self, symbols: Iterable[str]) -> int:
        """How many coins a call for `symbols` is expected to return (1 per symbol not seen)."""
        with self._lock:
            return sum(self._coins.get(s, 1) for s in symbols)

    def stalest(self, room: int, older_than_seconds: float,
                leave_out: Collection[str] = ()) -> list[str]:
        """Hot symbols not in `leave_out` whose stored quote is at least `older_than_seconds`
        old (or none is stored), stalest first, as many as fit in `room` coins."""
        if room <= 0 or self.window_seconds <= 0:
            return []
        now = self.clock.now()
        ages = self._ages(now)
        due_before = now - timedelta(seconds=older_than_seconds)
        due = sorted((at or now - _EPOCH_AGO, s) for s, at in ages.items()
                     if s not in leave_out and (at is None or at <= due_before))
        chosen: list[str] = []
        with self._lock:
            for _, symbol in due:
                coins = self._coins.get(symbol, 1)
                if coins > room:
                    continue
                chosen.append(symbol)
                room -= coins
        return chosen

    def fetched(self, quotes: Mapping[str, CoinQuote], coins: Mapping[str, int]) -> None:
        """Note what a call brought back: its quotes are fresh now, and each symbol's coins."""
        with self._lock:
            self._coins.update({s: n for s, n in coins.items() if n > 0})
            if self._memo is not None:
                ages = self._memo[1]
                for symbol, quote in quotes.items():
                    if symbol in ages:
                        ages[symbol] = quote.fetched_at

    def _ages(self, now: datetime) -> dict[str, datetime | None]:
        with self._lock:
            if self._memo is not None and \
                    (now - self._memo[0]).total_seconds() < self.memo_seconds:
                return dict(self._memo[1])
        try:
            symbols = self.request_log.requested_since(
                now - timedelta(seconds=self.window_seconds))[:MAX_READ]
            stored = self.repository.newest(symbols, self.currency) if symbols else {}
        except StorageError:
            logger.warning("the hot set could not be read; calls carry only what they need")
            return {}
        ages: dict[str, datetime | None] = {
            s: stored[s].fetched_at if s in stored else None for s in symbols}
        with self._lock:
            self._memo = (now, ages)
        return dict(ages)
