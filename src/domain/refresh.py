"""Refresh-ahead: rounds that re-fetch every recently requested symbol, one process at a time."""

from __future__ import annotations

import functools
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
)
from src.domain.freshness import due_after_seconds
from src.domain.model import CoinQuote, Fetched, Purpose, RefreshRound
from src.domain.ports import (
    Clock,
    CreditGovernor,
    QuoteCache,
    QuoteProvider,
    QuoteRepository,
    RefreshLease,
    RequestLog,
)
from src.domain.spending import COINS_PER_CREDIT, paid_call

logger = logging.getLogger(__name__)

DAILY_JOB = "history-prune"
DAILY_ASK_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class RefreshPolicy:
    """How rounds are run. `interval_seconds` None: the governor derives it from the budget."""

    window_seconds: int = 900
    interval_seconds: float | None = None
    cache_ttl_seconds: int = 60
    base_currency: str = "USD"
    # One batch's upstream call may take this long; the lease outlives it by `lease_margin`,
    # and is renewed every third of its life while a round runs.
    call_seconds: float = 10.0
    lease_margin_seconds: float = 5.0
    # Symbols requested within this longer window ride along for free in a round's last batch,
    # up to its 100 coins: a coin asked for every 20 minutes then never waits either.
    ride_along_seconds: int = 86_400
    # The freshness bound: a round refreshes only the quotes due (src/domain/spending.py).
    max_age_seconds: float | None = None

    @property
    def lease_seconds(self) -> float:
        return self.call_seconds + self.lease_margin_seconds


@dataclass(frozen=True)
class RefreshStatus:
    """Where refresh-ahead stands; OFF when there is no refresher (no database)."""

    window_seconds: int
    interval_seconds: float | None
    symbols: int
    last_round_at: datetime | None


REFRESH_OFF = RefreshStatus(window_seconds=0, interval_seconds=None, symbols=0, last_round_at=None)


class Refresher:
    """Keeps every symbol requested within the window fresh, in rounds of batched calls.

    A round: take the lease (or leave the round to whoever holds it), list the symbols
    requested within the window whose stored quotes are due for a refresh (past half the max
    age: other calls may have carried some meanwhile), the last batch filled up to 100 coins
    with due symbols requested within the day, then per batch pay for one call by the spending
    rules,
    store the answer as history and cache it. A spent budget, a provider outage, a lost lease or
    a stop ends the round early, between batches; the next round starts over. The lease is
    renewed while a batch runs, so that no other refresher pays for the same batch again.
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
        self._coins: dict[str, int] = {}  # coins each symbol returned (namesakes), as learned

    def interval(self, symbols: int) -> float:
        """Seconds between two rounds' starts: configured, or the governor's derivation. The
        governor is asked either way: it tells every process how many symbols are hot, which
        decides what refresh-ahead needs before conversions may spend."""
        derived = self.governor.refresh_interval(symbols)
        return self.policy.interval_seconds if self.policy.interval_seconds is not None \
            else derived

    def status(self) -> RefreshStatus:
        """Where refresh-ahead stands: its window, its interval, the last round (for /usage)."""
        try:
            last = self.lease.last_round()
        except StorageError:
            last = None
        symbols = last.symbols if last else 0
        return RefreshStatus(window_seconds=self.policy.window_seconds,
                             interval_seconds=self.interval(symbols), symbols=symbols,
                             last_round_at=last.finished_at if last else None)

    def run_round(self, *, due_now: bool = False,
                  stop: threading.Event | None = None) -> RefreshRound | None:
        """Run one round if it is due (or `due_now`) and this process wins the lease; None
        otherwise: refresh-ahead is off, or another process holds the lease or ran a round
        within the interval. `stop` set ends the round between batches. Raises StorageError
        when the lease cannot be read or taken.
        """
        if self.policy.window_seconds <= 0:
            return None
        last = self.lease.last_round()
        # The first round ever is due: no round started before it to space it from.
        interval = 0.0 if due_now or last is None else self.interval(last.symbols)
        if not self.lease.acquire(self.holder, self.policy.lease_seconds, interval):
            return None
        finished: RefreshRound | None = None
        try:
            with _LeaseKeeper(self.lease, self.holder, self.policy.lease_seconds) as kept:
                finished = self._round(kept, stop or threading.Event())
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
        if self.daily_job is None:
            return
        try:
            self.daily_job()
        except Exception:  # the next day's claim tries again
            logger.exception("refresh: the daily job failed")

    def run(self, stop: threading.Event, *, max_wait_seconds: float = 5.0) -> None:
        """Run rounds until `stop` is set; a failing database is logged and retried."""
        while not stop.is_set():
            try:
                done = self.run_round(stop=stop)
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
            # A small floor only: a round due in 0.2 s starts then, not half a second late.
            stop.wait(min(max(wait, 0.05), max_wait_seconds))

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

    def _round(self, kept: _LeaseKeeper, stop: threading.Event) -> RefreshRound:
        started = self.clock.now()
        symbols = self.request_log.requested_since(
            started - timedelta(seconds=self.policy.window_seconds))
        # Every process learns at once how many symbols are hot: what refresh-ahead needs
        # for them comes before conversions.
        self.governor.refresh_interval(len(symbols))
        riders = self._riding_along(started, symbols)
        due = self._due([*symbols, *riders], started)
        batches = self._batches([s for s in symbols if s in due], [s for s in riders if s in due])
        refreshed = calls = 0
        stopped = None
        for batch in batches:
            if stop.is_set():
                stopped = "stopping"
                break
            if kept.lost or (calls and not self.lease.renew(self.holder,
                                                            self.policy.lease_seconds)):
                stopped = "lease"
                break
            called: list[bool] = []
            try:
                fetched = paid_call(self.governor, Purpose.REFRESH, self._coins_of(batch),
                                    functools.partial(self._call, batch, called))
            except BudgetSpent as exc:
                calls += bool(called)
                logger.info("refresh: the credit budget allows no call now (retry in %s s)",
                            exc.retry_after)
                stopped = "budget"
                break
            except ProviderUnavailable as exc:
                calls += 1
                logger.warning("refresh: CoinMarketCap unavailable (%s); ending the round", exc)
                stopped = "provider"
                break
            except ProviderError as exc:
                calls += 1
                # One unusable answer says nothing about the other batches.
                logger.warning("refresh: CoinMarketCap answered a batch with an error (%s)", exc)
                continue
            calls += 1
            self._coins.update({s: n for s, n in fetched.coins.items() if n > 0})
            if fetched.quotes:
                self._keep(fetched.quotes)
            refreshed += len(fetched.quotes.keys() - set(riders))
        return RefreshRound(started_at=started, finished_at=self.clock.now(), symbols=len(symbols),
                            refreshed=refreshed, calls=calls, stopped=stopped)

    def _call(self, batch: list[str], called: list[bool]) -> Fetched[str, CoinQuote]:
        called.append(True)
        return self.provider.fetch_by_symbols(
            batch, self.policy.base_currency,
            deadline=Deadline(self.policy.call_seconds, clock=self._seconds))

    def _riding_along(self, now: datetime, hot: Sequence[str]) -> list[str]:
        """Symbols requested within the day but not the window, most recent first; no more than
        could ride in one batch's room twice over (their stored quotes are read each round)."""
        if self.policy.ride_along_seconds <= self.policy.window_seconds or not hot:
            return []
        chosen = set(hot)
        since = now - timedelta(seconds=self.policy.ride_along_seconds)
        riders = [s for s in self.request_log.requested_since(since) if s not in chosen]
        return riders[:2 * COINS_PER_CREDIT]

    def _due(self, symbols: Sequence[str], now: datetime) -> set[str]:
        """The symbols whose stored quote is due for a refresh, or has none (all of them when
        the database cannot tell)."""
        try:
            stored = self.repository.newest(symbols, self.policy.base_currency) if symbols else {}
        except StorageError:
            logger.warning("refresh: stored quotes unreadable; refreshing every symbol")
            return set(symbols)
        due_before = now - timedelta(seconds=due_after_seconds(self.policy.max_age_seconds))
        return {s for s in symbols if s not in stored or stored[s].fetched_at <= due_before}

    def _coins_of(self, symbols: Sequence[str]) -> int:
        return sum(self._coins.get(s, 1) for s in symbols)

    def _batches(self, symbols: Sequence[str], riders: Sequence[str]) -> list[list[str]]:
        """The hot symbols in calls of up to 100 coins (a symbol's namesakes count), the last
        one filled up with `riders` in the room its credit pays for anyway."""
        batches: list[list[str]] = []
        room = 0
        for symbol in symbols:
            coins = self._coins.get(symbol, 1)
            if not batches or coins > room:
                batches.append([])
                room = COINS_PER_CREDIT
            batches[-1].append(symbol)
            room -= coins
        for symbol in riders if batches else ():
            coins = self._coins.get(symbol, 1)
            if coins <= room:
                batches[-1].append(symbol)
                room -= coins
        return batches

    def _keep(self, fetched: dict[str, CoinQuote]) -> None:
        try:
            self.repository.add(fetched)
        except StorageError:
            # The cache still gets the fresh quotes; the history misses one point.
            logger.exception("refresh: storing %d quote(s) failed", len(fetched))
        self.cache.set_many(fetched, self.policy.base_currency, self.policy.cache_ttl_seconds)


class _LeaseKeeper:
    """Renews the lease every third of its life while a round runs, so that a batch that takes
    longer than the lease (a key-info read, a slow call, a database write with retries) never
    lets another refresher take it and pay for the same symbols; `lost` once a renewal fails."""

    def __init__(self, lease: RefreshLease, holder: str, ttl_seconds: float) -> None:
        self.lease = lease
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="refresh-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl_seconds / 3):
            try:
                renewed = self.lease.renew(self.holder, self.ttl_seconds)
            except StorageError:
                continue  # the database may be back before the lease lapses
            except Exception:  # a bug must not end the round silently
                logger.exception("refresh: renewing the lease failed")
                renewed = False
            if not renewed:
                self.lost = True
                return
