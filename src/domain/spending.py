"""The spending rules for CoinMarketCap's credits: what a call costs, who may spend what, how often
refresh-ahead runs, and how a call is paid for.

Plain arithmetic over plain figures (the plan, today's counts by purpose, where the budget's day
stands, how many symbols are hot). The credit governor adapter keeps the counts and shares them
between processes; every decision it takes is one of these functions.

The order (README "Freshness and credits"), with D the day's credits:
1. requests for symbols with nothing fresh stored: 10 % of D is theirs alone (the request
   reserve: what they have not spent of it is kept free of anything else), and 10 % of the
   minute's calls likewise;
2. refresh-ahead gets what holding the hot symbols within the max age needs for the rest of the
   day (one round per max age, never more often than every 60 s); requests beyond their reserve
   come after it;
3. conversions may spend at most their share of D, and only what (1) and (2) leave;
4. what nobody spends makes rounds more frequent (and serves requests beyond their reserve):
   the interval spreads what is left over the rest of the day, holding back for conversions
   only what their pace so far says they will spend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from src.domain.errors import LimitVerdict, QuoteError, charged_nothing
from src.domain.freshness import MIN_REFRESH_INTERVAL_SECONDS
from src.domain.model import Fetched, Purpose
from src.domain.ports import CreditGovernor

COINS_PER_CREDIT = 100  # a quotes call costs one credit per 100 coins it returns
REQUEST_RESERVE_SHARE = 0.10  # of the day's credits and of the minute's calls
DAY_SECONDS = 86_400.0
# Before this much of the day has gone, the conversions' pace is read over this much: one
# conversion in the day's first second is no pace for the whole day.
MIN_PACE_SECONDS = 3_600.0

_F = TypeVar("_F", bound=Fetched[Any, Any])
_calling: ContextVar[tuple[Purpose, int] | None] = ContextVar("coinquote_call", default=None)


def call_cost(coins: int) -> int:
    """The credits a quotes call returning `coins` coins costs: one per 100, at least one."""
    return max(1, math.ceil(coins / COINS_PER_CREDIT))


def room_in_call(coins: int) -> int:
    """How many more coins a call of `coins` coins can carry for the credits it costs anyway."""
    return call_cost(coins) * COINS_PER_CREDIT - coins


@dataclass(frozen=True, slots=True)
class Spent:
    """Today's credits by purpose; `elsewhere` is what CoinMarketCap counted that we did not
    (another client of the key, counters lost to a restart)."""

    request: int = 0
    refresh: int = 0
    convert: int = 0
    elsewhere: int = 0

    @property
    def total(self) -> int:
        return self.request + self.refresh + self.convert + self.elsewhere

    def of(self, purpose: Purpose) -> int:
        count: int = getattr(self, Purpose(purpose).value)
        return count


@dataclass(frozen=True, slots=True)
class BudgetDay:
    """Where the budget's day stands: seconds since it began and until it resets."""

    seconds_gone: float
    seconds_left: float


@dataclass(frozen=True, slots=True)
class SpendingPolicy:
    """The rules for one plan. `max_age_seconds` is the freshness bound (None: none);
    `interval_seconds` a configured refresh interval (None: derived)."""

    daily_credits: int
    calls_per_minute: int
    convert_share: float = 0.5
    max_age_seconds: float | None = 300.0
    interval_seconds: float | None = None

    @property
    def request_reserve(self) -> int:
        """Credits kept free of refresh-ahead and conversions: theirs alone."""
        return min(self.daily_credits,
                   max(1, math.ceil(self.daily_credits * REQUEST_RESERVE_SHARE)))

    def unused_reserve(self, spent: Spent) -> int:
        """What is left of the request reserve: kept free of anything but requests."""
        return max(0, self.request_reserve - spent.request)

    @property
    def convert_share_credits(self) -> int:
        return math.floor(self.daily_credits * self.convert_share)

    def calls_allowed(self, purpose: Purpose) -> int:
        """Calls this minute `purpose` may take part in (requests: all of them)."""
        if purpose is Purpose.REQUEST:
            return self.calls_per_minute
        return self.calls_per_minute - math.floor(self.calls_per_minute * REQUEST_RESERVE_SHARE)

    def refresh_need(self, day: BudgetDay, hot_symbols: int) -> int:
        """Credits refresh-ahead needs for the rest of the day to hold `hot_symbols` within the
        max age: a round per max age (never more often than every 60 s), each costing a credit
        per 100 symbols. A configured interval is what the rounds will do, so what they need:
        nobody adapts it to what others spent."""
        if hot_symbols <= 0 or self.max_age_seconds is None:
            return 0
        every = (self.interval_seconds if self.interval_seconds is not None
                 else max(MIN_REFRESH_INTERVAL_SECONDS, self.max_age_seconds))
        return math.ceil(day.seconds_left / every) * call_cost(hot_symbols)

    def convert_cap(self, spent: Spent, day: BudgetDay, hot_symbols: int) -> int:
        """What conversions may have spent by the end of the day, what they spent included."""
        left_for_them = (self.daily_credits - self.unused_reserve(spent)
                         - self.refresh_need(day, hot_symbols) - (spent.total - spent.convert))
        return max(0, min(self.convert_share_credits, left_for_them))

    def refusal(self, purpose: Purpose, credits: int, spent: Spent, day: BudgetDay,
                hot_symbols: int) -> str | None:
        """Why `credits` more for `purpose` would break the rules now; None when allowed."""
        total = spent.total + credits
        if purpose is Purpose.REQUEST:
            if total > self.daily_credits:
                return "today's credits are used"
            if spent.request + credits <= self.request_reserve:
                return None  # their reserve, whatever else is needed
            if total > self.daily_credits - self.refresh_need(day, hot_symbols):
                return "what is left of today's credits keeps the most requested quotes fresh"
            return None
        if total > self.daily_credits - self.unused_reserve(spent):
            return "what is left of today's credits is kept for symbols with nothing stored"
        if purpose is Purpose.CONVERT:
            if spent.convert + credits > self.convert_share_credits:
                return f"conversions may use {self.convert_share:.0%} of the day's credits"
            if spent.convert + credits > self.convert_cap(spent, day, hot_symbols):
                return "what is left of today's credits keeps the most requested quotes fresh"
        return None

    def refresh_interval(self, spent: Spent, day: BudgetDay, hot_symbols: int) -> float:
        """Seconds between refresh rounds: configured, or what is left after the request reserve
        and the conversions' expected spending, spread over the rest of the day (>= 60 s)."""
        if self.interval_seconds is not None:
            return self.interval_seconds
        per_round = call_cost(max(1, hot_symbols))
        left = (self.daily_credits - self.unused_reserve(spent) - spent.total
                - self._convert_hold(spent, day, hot_symbols))
        rounds = left // per_round
        if rounds < 1:
            return max(MIN_REFRESH_INTERVAL_SECONDS, day.seconds_left)
        return max(MIN_REFRESH_INTERVAL_SECONDS, day.seconds_left / rounds)

    def _convert_hold(self, spent: Spent, day: BudgetDay, hot_symbols: int) -> int:
        """What conversions will spend for the rest of the day at their pace so far, within
        what they may still spend: their idle share is not held back from refresh-ahead."""
        may_still = max(0, self.convert_cap(spent, day, hot_symbols) - spent.convert)
        pace = spent.convert / max(day.seconds_gone, MIN_PACE_SECONDS)
        return min(may_still, math.ceil(pace * day.seconds_left))

    def bound_held(self, hot_symbols: int = COINS_PER_CREDIT) -> float:
        """The freshness bound (seconds) a whole day of this plan holds for `hot_symbols` when
        nothing but refresh-ahead spends: rounds as often as the credits beyond the request
        reserve allow (never more often than every 60 s)."""
        rounds = (self.daily_credits - self.request_reserve) // call_cost(max(1, hot_symbols))
        every = DAY_SECONDS / rounds if rounds >= 1 else DAY_SECONDS
        return max(MIN_REFRESH_INTERVAL_SECONDS, self.interval_seconds or 0.0, every)

    def holds_max_age(self, hot_symbols: int = COINS_PER_CREDIT) -> bool:
        """Whether the plan can keep `hot_symbols` within the max age all day."""
        return self.max_age_seconds is None or self.bound_held(hot_symbols) <= self.max_age_seconds


def call_purpose() -> Purpose:
    """The purpose of the provider call under way in this context (a retry of it is reserved
    for the same purpose); a request when none is."""
    calling = _calling.get()
    return calling[0] if calling is not None else Purpose.REQUEST


def retry_cost(previous_failure: BaseException | None) -> int:
    """What a retry of the call under way adds to the day: nothing after a failure that cost
    nothing; after one that may have been charged (a timeout: CoinMarketCap may have answered
    after we gave up), what the call was expected to cost, since the retry may be charged too."""
    calling = _calling.get()
    if calling is None or previous_failure is None or charged_nothing(previous_failure):
        return 0
    return calling[1]


def paid_call(governor: CreditGovernor | None, purpose: Purpose, coins: int,
              call: Callable[[], _F]) -> _F:
    """Make one provider call on the budget: reserve its expected cost (`coins` coins), then
    settle to what CoinMarketCap says it charged. A failed call settles to nothing when it cost
    nothing (an error answer, an outage) and keeps its reservation otherwise (a timeout may have
    been charged); a limit verdict is passed on so that every process honours it."""
    estimate = call_cost(coins)
    if governor is None:
        return call()
    governor.reserve(purpose, estimate)
    with _calling_for(purpose, estimate):
        try:
            fetched = call()
        except QuoteError as exc:
            governor.settle(purpose, estimate, 0 if charged_nothing(exc) else None)
            if isinstance(exc, LimitVerdict):
                governor.honour(exc)
            raise
    governor.settle(purpose, estimate, fetched.credits)
    return fetched


@contextmanager
def _calling_for(purpose: Purpose, estimate: int) -> Iterator[None]:
    token = _calling.set((purpose, estimate))
    try:
        yield
    finally:
        _calling.reset(token)
