"""Refresh-ahead: rounds that re-fetch every recently requested symbol, one process at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from src.domain.deadline import Deadline
from src.domain.errors import (
    BudgetSpent,
    ProviderError,
    ProviderUnavailable,
    StorageError,
    charged_nothing,
)
from src.domain.model import Purpose, RefreshRound
from src.domain.ports import (
    Clock,
    CreditGovernor,
    QuoteCache,
    QuoteProvider,
    QuoteRepository,
    RefreshLease,
    RequestLog,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 100  # CoinMarketCap charges one credit per 100 coins of one call
# CoinMarketCap's limit verdicts: every process must stop calling (the governor spreads them).
LIMIT_CODES = frozenset({1008, 1009, 1010, 1011})
DAILY_JOB = "history-prune"
DAILY_ASK_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class RefreshPolicy:
    """How rounds are run. `interval_seconds` None: the governor derives it from the budget."""

    window_seconds: int = 900
    interval_seconds: float | None = None
    cache_ttl_seconds: int = 60
    base_currency: str = "USD"
    # One batch's upstream call may take this long; the lease outlives it by `lease_margin`.
    call_seconds: float = 10.0
    lease_margin_seconds: float = 5.0

    @property
    def lease_seconds(self) -> float:
        return self.call_seconds + self.lease_margin_seconds


class Refresher:
    """Keeps every symbol requested within the window fresh, in rounds of batched calls.

    A round: take the lease (or leave the round to whoever holds it), list the symbols
    requested within the window, then per batch of up to 100 symbols reserve one refresh
    credit, call the provider once, store the answer as history and cache it. A spent budget,
    a provider outage or a lost lease ends the round early; the next round starts over.
    """

    def __init__(
        self,
        *,
        provider: QuoteProvider,
        repository: QuoteRepository,
        cache: QuoteCache,
        governor: CreditGovernor,
        request_log: RequestLog,
        lease: RefreshLease,
        clock: Clock,
        policy: RefreshPolicy,
        holder: str,
        daily_job: Callable[[], object] | None = None,
    ) -> None:
        self.provider = provider
        self.repository = repository
        self.cache = cache
        self.governor = governor
        self.request_log = request_log
        self.lease = lease
        self.clock = clock
        self.policy = policy
        self.holder = holder
        self.daily_job = daily_job
        self._daily_asked_at: datetime | None = None
        self._daily_thread: threading.Thread | None = None

    def interval(self, symbols: int) -> float:
        """Seconds between two rounds' starts: configured, or the governor's derivation."""
        if self.policy.interval_seconds is not None:
            return self.policy.interval_seconds
        return self.governor.refresh_interval(symbols)

    def run_round(self, *, due_now: bool = False) -> RefreshRound | None:
        """Run one round if it is due (or `due_now`) and this process wins the lease; None
        otherwise: refresh-ahead is off, or another process holds the lease or ran a round
        within the interval. Raises StorageError when the lease cannot be read or taken.
        """
        if self.policy.window_seconds <= 0:
            return None
        last = self.lease.last_round()
        interval = 0.0 if due_now else self.interval(last.symbols if last else 0)
        if not self.lease.acquire(self.holder, self.policy.lease_seconds, interval):
            return None
        finished: RefreshRound | None = None
        try:
            finished = self._round()
        finally:
            self.lease.release(self.holder, finished)
        logger.info("refresh round: %d of %d symbol(s) refreshed in %d call(s)%s",
                    finished.refreshed, finished.symbols, finished.calls,
                    f", stopped: {finished.stopped}" if finished.stopped else "")
        return finished

    def run_daily_job(self, *, background: bool = False) -> bool:
        """Run the daily job (history pruning) if no process has run it within a day; in a
        thread of its own when `background`, so that a long first prune never holds up rounds.
        """
        now = self.clock.now()
        # Asking the database is a write: once every few minutes per process is plenty.
        if self.daily_job is None or (self._daily_asked_at is not None
                                      and now - self._daily_asked_at < DAILY_ASK_EVERY):
            return False
        if self._daily_thread is not None and self._daily_thread.is_alive():
            return False  # still pruning since an earlier day's claim
        self._daily_asked_at = now
        if not self.lease.claim_daily(DAILY_JOB):
            return False
        if not background:
            self.daily_job()
            return True
        # A daemon: stopping the refresher does not wait for it (the prune is idempotent).
        self._daily_thread = threading.Thread(target=self._daily_job_logged,
                                              name="refresh-daily-job", daemon=True)
        self._daily_thread.start()
        return True

    def _daily_job_logged(self) -> None:
        try:
            self.daily_job()
        except Exception:  # the next day's claim tries again
            logger.exception("refresh: the daily job failed")

    def run(self, stop: threading.Event, *, max_wait_seconds: float = 5.0) -> None:
        """Run rounds until `stop` is set; a failing database is logged and retried."""
        while not stop.is_set():
            try:
                done = self.run_round()
                self.run_daily_job(background=True)
                if self.policy.window_seconds <= 0:
                    wait = max_wait_seconds  # only the daily job is left to ask for
                else:
                    wait = self.seconds_until_due()
                    if done is None and wait <= 0:
                        # Due but not ours: another process is in a round (or died in one and
                        # its lease must expire first). Asking again at once would only poll.
                        wait = max_wait_seconds
            except StorageError:
                logger.exception("refresh: the database failed; trying again shortly")
                wait = max_wait_seconds
            except Exception:  # the loop must outlive any one bad round (a bug, a daily job)
                logger.exception("refresh: the round failed; trying again shortly")
                wait = max_wait_seconds
            stop.wait(min(max(wait, 0.5), max_wait_seconds))

    def seconds_until_due(self) -> float:
        """Seconds until the next round may start, as far as this process can tell."""
        last = self.lease.last_round()
        if last is None:
            return 0.0
        due = last.started_at + timedelta(seconds=self.interval(last.symbols))
        return (due - self.clock.now()).total_seconds()

    def _seconds(self) -> float:
        # The injected clock, so that a test's simulated slow calls move the deadline.
        return self.clock.now().timestamp()

    def _round(self) -> RefreshRound:
        started = self.clock.now()
        since = started - timedelta(seconds=self.policy.window_seconds)
        symbols = self.request_log.requested_since(since)
        refreshed = calls = 0
        stopped = None
        for batch in _batches(symbols, BATCH_SIZE):
            if calls and not self.lease.renew(self.holder, self.policy.lease_seconds):
                stopped = "lease"
                break
            try:
                self.governor.reserve(Purpose.REFRESH, 1)
            except BudgetSpent as exc:
                logger.info("refresh: the credit budget allows no call now (retry in %s s)",
                            exc.retry_after)
                stopped = "budget"
                break
            calls += 1
            try:
                fetched = self.provider.latest_by_symbols(
                    batch, self.policy.base_currency,
                    deadline=Deadline(self.policy.call_seconds, clock=self._seconds))
            except ProviderUnavailable as exc:
                self._refund_if_uncharged(exc)
                if exc.upstream_code in LIMIT_CODES:
                    self.governor.honour(exc.upstream_code, exc.retry_after)
                logger.warning("refresh: CoinMarketCap unavailable (%s); ending the round", exc)
                stopped = "provider"
                break
            except ProviderError as exc:
                self._refund_if_uncharged(exc)
                # One unusable answer says nothing about the other batches.
                logger.warning("refresh: CoinMarketCap answered a batch with an error (%s)", exc)
                continue
            if fetched:
                self._keep(fetched)
            refreshed += len(fetched)
        return RefreshRound(started_at=started, finished_at=self.clock.now(), symbols=len(symbols),
                            refreshed=refreshed, calls=calls, stopped=stopped)

    def _refund_if_uncharged(self, exc: ProviderUnavailable | ProviderError) -> None:
        if charged_nothing(exc):
            self.governor.refund(Purpose.REFRESH, 1)

    def _keep(self, fetched: dict) -> None:
        try:
            self.repository.add(fetched)
        except StorageError:
            # The cache still gets the fresh quotes; the history misses one point.
            logger.exception("refresh: storing %d quote(s) failed", len(fetched))
        self.cache.set_many(fetched, self.policy.base_currency, self.policy.cache_ttl_seconds)


def _batches(symbols: Sequence[str], size: int) -> list[list[str]]:
    return [list(symbols[i:i + size]) for i in range(0, len(symbols), size)]


def refresh_status(refresher: Refresher | None) -> dict:
    """Plain data for /usage and /metrics: window, interval, symbols and the last round."""
    if refresher is None:
        return {"window_seconds": 0, "interval_seconds": None, "symbols": 0, "last_round_at": None}
    try:
        last = refresher.lease.last_round()
    except StorageError:
        last = None
    symbols = last.symbols if last else 0
    return {
        "window_seconds": refresher.policy.window_seconds,
        "interval_seconds": refresher.interval(symbols),
        "symbols": symbols,
        "last_round_at": last.finished_at if last else None,
    }
