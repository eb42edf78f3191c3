"""The ports the quote service needs, as abstract base classes: adapters and test fakes subclass
them explicitly, and a subclass missing a method fails when it is built, not when first called.

Every port is batch-shaped: one call carries all symbols of a request, so a request costs one
cache round trip, one database query and one upstream call at most.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from src.domain.deadline import Deadline
from src.domain.errors import LimitVerdict
from src.domain.model import (
    CoinQuote,
    Fetched,
    FetchFailure,
    Plan,
    Purpose,
    Quote,
    RefreshRound,
)


class QuoteProvider(abc.ABC):
    """The upstream market-data source (CoinMarketCap)."""

    @abc.abstractmethod
    def fetch_by_symbols(self, symbols: Sequence[str], currency: str, *,
                         deadline: Deadline | None = None) -> Fetched[str, CoinQuote]:
        """Fetch the latest quotes of `symbols` (normalised) in `currency`, in one call.

        The answer maps requested symbol to quote; symbols that do not exist are absent, and
        those answered with nothing usable are `unreadable`. When several coins share a symbol,
        the active one with the best rank is returned. It says what the call was charged.
        All of the call's work (connecting, every retry and wait, reading the body) ends before
        `deadline` (the provider's own budget from now when None); past it, ProviderTimeout.
        Raises ProviderUnavailable (down; LimitVerdict: a plan limit), ProviderTimeout, or
        ProviderError (unusable answer, rejected credentials).
        """

    @abc.abstractmethod
    def fetch_by_ids(self, coin_ids: Sequence[int], currency: str, *,
                     deadline: Deadline | None = None) -> Fetched[int, Quote]:
        """Fetch the latest quotes of the coins `coin_ids` in `currency`, in one call.

        The answer maps coin id to its quote in `currency`; ids the provider does not know are
        absent. Raises InvalidCurrency when `currency` does not exist, otherwise as
        `fetch_by_symbols`.
        """

    def latest_by_symbols(self, symbols: Sequence[str], currency: str, *,
                          deadline: Deadline | None = None) -> dict[str, CoinQuote]:
        """The quotes of `fetch_by_symbols` alone."""
        return self.fetch_by_symbols(symbols, currency, deadline=deadline).quotes

    def latest_by_ids(self, coin_ids: Sequence[int], currency: str, *,
                      deadline: Deadline | None = None) -> dict[int, Quote]:
        """The quotes of `fetch_by_ids` alone."""
        return self.fetch_by_ids(coin_ids, currency, deadline=deadline).quotes


class QuoteRepository(abc.ABC):
    """Durable storage of every fetched quote (history); serves the newest per symbol."""

    @abc.abstractmethod
    def newest(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        """Return the newest stored quote in `currency` of each symbol that has one, in one query.

        Raises StorageError when the storage cannot be read.
        """

    @abc.abstractmethod
    def add(self, quotes: Mapping[str, CoinQuote]) -> None:
        """Store `quotes` (keyed by the symbol they answer) as new history, in one transaction.

        Raises StorageError when nothing could be stored.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the storage answers now."""


class QuoteCache(abc.ABC):
    """Short-lived shared cache of base-currency quotes. Converted quotes never enter it.

    An entry is a quote, or None for a symbol known not to exist (a negative entry), so that
    repeated junk costs neither a database query nor CoinMarketCap credits. A cache that cannot
    be reached answers misses and drops writes: none of these methods raises except `ping`.
    """

    @abc.abstractmethod
    def get_many(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote | None]:
        """Return the cached entries among `symbols` (absent: a miss), in one round trip."""

    @abc.abstractmethod
    def set_many(self, entries: Mapping[str, CoinQuote | None], currency: str,
                 ttl_seconds: int) -> None:
        """Cache `entries` (keyed by symbol; None marks an unknown symbol) for `ttl_seconds`."""

    @abc.abstractmethod
    def claim_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                      ttl_seconds: float) -> tuple[str, ...]:
        """Claim, per symbol and atomically across processes, the right to fetch `symbols`.

        Returns the symbols now claimed by `owner` (a token unique to this attempt); a symbol
        already claimed by someone else (or holding a failure note) is left out. When the cache
        cannot tell, every symbol is returned: everyone may fetch. Claims expire after
        `ttl_seconds` so a crashed holder never blocks a symbol for long.
        """

    @abc.abstractmethod
    def fetch_states(self, symbols: Sequence[str], currency: str) -> dict[str, FetchFailure | None]:
        """The symbols among `symbols` that hold a claim: None while its fetch is under way, a
        FetchFailure once the holder failed and left a note. Absent: not claimed (or the cache
        cannot tell)."""

    @abc.abstractmethod
    def release_fetches(self, symbols: Sequence[str], currency: str, owner: str,
                        failure: FetchFailure | None = None,
                        failure_ttl_seconds: float = 5.0) -> None:
        """Release `owner`'s claims on `symbols`; a claim held by another owner is never touched.

        With `failure`, each claim is replaced (still only if `owner` holds it) by the failure
        note for `failure_ttl_seconds`, so that those waiting get the holder's error instead of
        each calling the provider in turn.
        """

    @abc.abstractmethod
    def currency_known(self, currency: str) -> bool | None:
        """True when `currency` is remembered as a valid conversion target, False when it is
        remembered as unknown, None when nothing is remembered (or the cache cannot tell)."""

    @abc.abstractmethod
    def remember_currency(self, currency: str, known: bool, ttl_seconds: int) -> None:
        """Remember for `ttl_seconds` whether `currency` exists as a conversion target."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the cache answers now."""


class CreditGovernor(abc.ABC):
    """The CoinMarketCap budget, shared by every process and replica (README "Freshness and
    credits"); its rules are src/domain/spending.py's.

    Every provider call is reserved here first at its expected cost, then settled to what
    CoinMarketCap says it charged; the governor knows the plan, what was spent today by purpose,
    and CoinMarketCap's own verdicts. A governor whose storage fails keeps counting in-process:
    it never raises anything but BudgetSpent.
    """

    @abc.abstractmethod
    def reserve(self, purpose: Purpose, credits: int) -> None:
        """Count one call against the minute and `credits` against the day for `purpose`.

        Raises BudgetSpent (with `retry_after`) when the call is not allowed now: the minute's
        calls are used, the day's credits for this purpose are spent (the order of
        src/domain/spending.py), or a CoinMarketCap verdict is in force.
        """

    @abc.abstractmethod
    def settle(self, purpose: Purpose, reserved: int, charged: int | None) -> None:
        """Settle a call reserved at `reserved` credits to the `charged` credits CoinMarketCap
        says it cost: give back what it did not charge, count what it charged beyond the
        reservation. None: it did not say (the reservation stands). The call still counts
        against its minute."""

    @abc.abstractmethod
    def honour(self, verdict: LimitVerdict) -> None:
        """Record a CoinMarketCap limit verdict for every process: no call until it lapses."""

    @abc.abstractmethod
    def plan(self) -> Plan:
        """The plan in force (configured, read from CoinMarketCap's key info, or the default)."""

    @abc.abstractmethod
    def refresh_interval(self, symbols: int) -> float:
        """Seconds between refresh rounds for `symbols` hot symbols: the shortest the day's
        credits sustain (never below 60 s, unless configured). Also tells every process how
        many symbols are hot, for what refresh-ahead needs."""

    @abc.abstractmethod
    def usage(self) -> dict[str, Any]:
        """Plain data for /usage and /metrics: plan, today's credits used/left by purpose, and
        the freshness bound the plan holds."""


class Clock(abc.ABC):
    """The current time, injected so that the domain never reads the system clock itself."""

    @abc.abstractmethod
    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a fake clock just moves on)."""


class RequestLog(abc.ABC):
    """Which symbols clients asked for, and when: the refresher's list of symbols to keep fresh.

    Shared by every process and replica. Writes come in batches (a buffer in each process), so
    the hot path never pays a write per request.
    """

    @abc.abstractmethod
    def record(self, requested: Mapping[str, datetime]) -> None:
        """Note that each symbol was requested at the time given (an older time never replaces a
        newer one), in one transaction. Raises StorageError when nothing could be written."""

    @abc.abstractmethod
    def requested_since(self, since: datetime) -> list[str]:
        """The symbols requested at or after `since`, most recently requested first.

        Raises StorageError when the log cannot be read.
        """


class RefreshLease(abc.ABC):
    """The right to run one refresh round, shared by every refresher of every replica.

    A lease expires by itself after its TTL, so a refresher killed mid-round blocks the next
    round for one TTL at most. It also remembers when the last round started (rounds are spaced
    by the interval whoever runs them) and what the last finished round did.
    """

    @abc.abstractmethod
    def acquire(self, holder: str, ttl_seconds: float, interval_seconds: float) -> bool:
        """Take the lease for `holder` for `ttl_seconds`, atomically across processes, when no live
        lease is held and the last round started at least `interval_seconds` ago.

        Returns True when taken (the round's start is recorded as now). Raises StorageError.
        """

    @abc.abstractmethod
    def renew(self, holder: str, ttl_seconds: float) -> bool:
        """Extend `holder`'s lease by `ttl_seconds` from now; False when `holder` no longer
        holds it.

        Raises StorageError.
        """

    @abc.abstractmethod
    def release(self, holder: str, finished: RefreshRound | None = None) -> None:
        """Give up `holder`'s lease (a lease held by another is never touched) and record
        `finished` as the last round. Raises StorageError."""

    @abc.abstractmethod
    def last_round(self) -> RefreshRound | None:
        """The last finished round (None before the first). Raises StorageError."""

    @abc.abstractmethod
    def claim_daily(self, job: str) -> bool:
        """True at most once a day across processes for `job` (e.g. history pruning): the caller
        that gets True runs it. Raises StorageError."""
