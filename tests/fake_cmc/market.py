"""The fake CoinMarketCap's state: coins, fiat rates, the calls it received, scripted failures."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

TEST_KEY = "fake-cmc-test-key-0123456789abcdef"
SYNTHETIC_SYMBOL = re.compile(r"SYN(\d{1,6})")
SYNTHETIC_ID_BASE = 5_000_000


@dataclass
class FakeCoin:
    id: int
    name: str
    symbol: str
    slug: str
    price_usd: Decimal
    cmc_rank: int | None
    is_active: int = 1
    num_market_pairs: int = 100
    circulating_supply: Decimal = Decimal("1000000")
    total_supply: Decimal = Decimal("1000000")
    max_supply: Decimal | None = None
    date_added: str = "2015-01-01T00:00:00.000Z"
    volume_24h_usd: Decimal = Decimal("1000000.5")
    percent_change_24h: Decimal = Decimal("1.5")


def default_coins() -> list[FakeCoin]:
    """The coins the fake knows; ETC lists the dead Ethercoin first, as real v2 answers do."""
    return [
        FakeCoin(1, "Bitcoin", "BTC", "bitcoin", Decimal("67250.12"), 1, num_market_pairs=11842,
                 circulating_supply=Decimal("19712543"), total_supply=Decimal("19712543"),
                 max_supply=Decimal("21000000"), date_added="2010-07-13T00:00:00.000Z",
                 volume_24h_usd=Decimal("28514220110.4")),
        FakeCoin(1027, "Ethereum", "ETH", "ethereum", Decimal("3512.44"), 2, num_market_pairs=9731,
                 circulating_supply=Decimal("120214318.6"), total_supply=Decimal("120214318.6"),
                 date_added="2015-08-07T00:00:00.000Z", volume_24h_usd=Decimal("14220001500.2")),
        FakeCoin(825, "Tether USDt", "USDT", "tether", Decimal("1.0002"), 3),
        FakeCoin(1839, "BNB", "BNB", "bnb", Decimal("598.31"), 4),
        FakeCoin(5426, "Solana", "SOL", "solana", Decimal("171.05"), 5),
        FakeCoin(52, "XRP", "XRP", "xrp", Decimal("0.5234"), 6),
        FakeCoin(74, "Dogecoin", "DOGE", "dogecoin", Decimal("0.123456789012"), 8),
        FakeCoin(646, "Ethercoin", "ETC", "ethercoin", Decimal("0.000212"), None, is_active=0,
                 num_market_pairs=0, date_added="2014-10-03T00:00:00.000Z"),
        FakeCoin(1321, "Ethereum Classic", "ETC", "ethereum-classic", Decimal("26.91"), 22,
                 num_market_pairs=602, max_supply=Decimal("210700000"),
                 date_added="2016-07-24T00:00:00.000Z"),
        FakeCoin(2682, "Holo", "HOT", "holo", Decimal("0.0019"), 150),
        FakeCoin(2069, "Hydro Protocol", "HOT", "hydro-protocol", Decimal("0.0004"), 1800),
        FakeCoin(3077, "HOT Token", "HOT", "hot-token", Decimal("0.0001"), 2200),
    ]


# USD value of one unit of each fiat currency (and metals), for conversions.
DEFAULT_FIAT_USD = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "JPY": Decimal("0.0067"),
    "CHF": Decimal("1.13"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "BRL": Decimal("0.2"),
    "CNY": Decimal("0.138"),
    "INR": Decimal("0.012"),
    "KRW": Decimal("0.00074"),
    "MXN": Decimal("0.058"),
    "XAU": Decimal("2350"),
}
FIAT_IDS = {"USD": 2781, "EUR": 2790, "GBP": 2791, "JPY": 2797, "CHF": 2785, "CAD": 2784,
            "AUD": 2782, "BRL": 2783, "CNY": 2787, "INR": 2796, "KRW": 2798, "MXN": 2799,
            "XAU": 3575}


@dataclass
class Failure:
    """A scripted answer for the next `times` quote calls."""

    status: int = 500
    error_code: int | None = 500
    message: str = "An internal server error occurred"
    body: str = "json"  # json | html | malformed
    retry_after: str | None = None
    delay: float = 0.0
    times: int = 1


@dataclass(frozen=True)
class Plan:
    """What the fake's key may do; None is unlimited (the default, so ordinary tests never hit it)."""

    daily_credits: int | None = None
    monthly_credits: int | None = None
    calls_per_minute: int | None = None


# What /v1/key/info reports for an unlimited figure (an enterprise-sized plan).
UNLIMITED = {"daily_credits": 10_000_000, "monthly_credits": 300_000_000, "calls_per_minute": 10_000}
LIMIT_MESSAGES = {
    1008: "You've exceeded your API Key's HTTP request rate limit. Rate limits reset every minute.",
    1009: "You've exceeded your API Key's daily rate limit.",
    1010: "You've exceeded your API Key's monthly rate limit.",
    1011: "You've hit an IP rate limit.",
}


@dataclass
class Verdict:
    """An injected limit answer (429 with `error_code`) for every call until `until` (epoch s)."""

    error_code: int
    until: float


@dataclass
class Market:
    """Thread-safe state of one fake CoinMarketCap."""

    api_key: str = TEST_KEY
    coins: list[FakeCoin] = field(default_factory=default_coins)
    fiat_usd: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_FIAT_USD))
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    latency: float = 0.0  # seconds every successful quotes answer takes
    plan: Plan = field(default_factory=Plan)
    clock: Callable[[], float] = time.time
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Usage as CoinMarketCap counts it: calls per minute of the fake's clock, credits per UTC
    # day and month; refused calls by error code (tests assert coinquote caused none).
    minute_calls: dict[int, int] = field(default_factory=dict)
    day_credits: dict[str, int] = field(default_factory=dict)
    month_credits: dict[str, int] = field(default_factory=dict)
    refused: dict[int, int] = field(default_factory=dict)
    verdict: Verdict | None = None

    def __post_init__(self) -> None:
        self.start_plan = self.plan

    def by_symbol(self, symbol: str) -> list[FakeCoin]:
        symbol = symbol.upper()
        found = [c for c in self.coins if c.symbol.upper() == symbol]
        if not found and (match := SYNTHETIC_SYMBOL.fullmatch(symbol)):
            found = [synthetic_coin(int(match.group(1)))]
        return found

    def by_id(self, coin_id: int) -> FakeCoin | None:
        for coin in self.coins:
            if coin.id == coin_id:
                return coin
        if coin_id > SYNTHETIC_ID_BASE:
            return synthetic_coin(coin_id - SYNTHETIC_ID_BASE)
        return None

    def usd_value(self, currency: str) -> Decimal | None:
        """USD value of one unit of `currency` (fiat wins over a crypto with the same symbol)."""
        currency = currency.upper()
        if currency in self.fiat_usd:
            return self.fiat_usd[currency]
        coins = [c for c in self.by_symbol(currency) if c.is_active]
        if not coins:
            return None
        return min(coins, key=lambda c: c.cmc_rank or 10**9).price_usd

    def set_prices(self, prices: dict[str, Any]) -> None:
        with self.lock:
            for symbol, price in prices.items():
                for coin in self.coins:
                    if coin.symbol.upper() == symbol.upper() and coin.is_active:
                        coin.price_usd = Decimal(str(price))

    def record(self, path: str, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Note a call; the entry returned is completed with what the call was answered."""
        entry: dict[str, Any] = {"path": path, "params": dict(params)}
        with self.lock:
            self.calls.append(entry)
        return entry

    def answered(self, entry: dict[str, Any], currency: str, keys: list[str]) -> None:
        """Note that the call `entry` got quotes in `currency` for `keys` (symbols or ids)."""
        with self.lock:
            entry.update(answered=keys, currency=currency, answered_at=time.time())

    def next_failure(self) -> Failure | None:
        with self.lock:
            if not self.failures:
                return None
            failure = self.failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self.failures.pop(0)
            return failure

    def reset(self) -> None:
        """Back to the state at start: default coins, the plan given at start, nothing used."""
        with self.lock:
            self.coins = default_coins()
            self.fiat_usd = dict(DEFAULT_FIAT_USD)
            self.calls.clear()
            self.failures.clear()
            self.latency = 0.0
            self.plan = self.start_plan
            self.minute_calls.clear()
            self.day_credits.clear()
            self.month_credits.clear()
            self.refused.clear()
            self.verdict = None

    # -- the plan ---------------------------------------------------------------------------

    def set_plan(self, **limits: int | None) -> None:
        """Change some of the plan's figures (None: unlimited); usage so far is kept."""
        with self.lock:
            self.plan = replace(self.plan, **limits)

    def inject_verdict(self, error_code: int, seconds: float) -> None:
        """Answer every call with 429 `error_code` for `seconds` from now (1009, 1010: the daily or
        monthly reset then reported by /v1/key/info is that moment)."""
        with self.lock:
            self.verdict = Verdict(error_code, self.clock() + seconds)

    def admit_call(self, *, free: bool = False) -> int | None:
        """Count one call against the current minute; the refusing error code, or None.

        A `free` call (key info) is refused only by the minute's limits, not by spent credits.
        """
        with self.lock:
            now = self.clock()
            if self.verdict is not None and now < self.verdict.until and \
                    not (free and self.verdict.error_code in (1009, 1010)):
                return self._refuse(self.verdict.error_code)
            minute = int(now // 60)
            made = self.minute_calls.get(minute, 0)
            if self.plan.calls_per_minute is not None and made >= self.plan.calls_per_minute:
                return self._refuse(1008)
            self.minute_calls = {minute: made + 1}
            return None

    def charge(self, credits: int) -> int | None:
        """Spend `credits` today and this month; the refusing error code (nothing spent), or None."""
        with self.lock:
            day, month = self._day_and_month()
            if self.plan.daily_credits is not None and \
                    self.day_credits.get(day, 0) + credits > self.plan.daily_credits:
                return self._refuse(1009)
            if self.plan.monthly_credits is not None and \
                    self.month_credits.get(month, 0) + credits > self.plan.monthly_credits:
                return self._refuse(1010)
            self.day_credits[day] = self.day_credits.get(day, 0) + credits
            self.month_credits[month] = self.month_credits.get(month, 0) + credits
            return None

    def usage(self) -> dict[str, Any]:
        """Plan and usage as /v1/key/info reports them (and /__fake__/usage, for tests)."""
        with self.lock:
            now = self.clock()
            day, month = self._day_and_month()
            daily = _figure(self.plan.daily_credits, "daily_credits")
            monthly = _figure(self.plan.monthly_credits, "monthly_credits")
            per_minute = _figure(self.plan.calls_per_minute, "calls_per_minute")
            made = self.minute_calls.get(int(now // 60), 0)
            used_day, used_month = self.day_credits.get(day, 0), self.month_credits.get(month, 0)
            daily_reset = self._daily_reset(now)
            monthly_reset = self.verdict.until if self._verdict_in_force(now, 1010) \
                else _next_month(now)
            return {
                "plan": {
                    "credit_limit_daily": daily,
                    "credit_limit_daily_reset": _in_words(daily_reset - now),
                    "credit_limit_daily_reset_timestamp": _iso(daily_reset),
                    "credit_limit_monthly": monthly,
                    "credit_limit_monthly_reset": _in_words(monthly_reset - now),
                    "credit_limit_monthly_reset_timestamp": _iso(monthly_reset),
                    "rate_limit_minute": per_minute,
                },
                "usage": {
                    "current_minute": {"requests_made": made, "requests_left": max(0, per_minute - made)},
                    "current_day": {"credits_used": used_day,
                                    "credits_left": 0 if self._verdict_in_force(now, 1009)
                                    else max(0, daily - used_day)},
                    "current_month": {"credits_used": used_month,
                                      "credits_left": 0 if self._verdict_in_force(now, 1010)
                                      else max(0, monthly - used_month)},
                },
                "refused": {str(code): n for code, n in sorted(self.refused.items())},
            }

    def _refuse(self, code: int) -> int:
        self.refused[code] = self.refused.get(code, 0) + 1
        return code

    def _day_and_month(self) -> tuple[str, str]:
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        return today.isoformat(), today.isoformat()[:7]

    def _verdict_in_force(self, now: float, code: int) -> bool:
        return self.verdict is not None and self.verdict.error_code == code and now < self.verdict.until

    def _daily_reset(self, now: float) -> float:
        if self._verdict_in_force(now, 1009):
            return self.verdict.until
        midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight + timedelta(days=1)).timestamp()


def synthetic_coin(n: int) -> FakeCoin:
    """Coin SYN<n>: exists for any n, so benchmarks can ask for coins nobody has cached."""
    return FakeCoin(SYNTHETIC_ID_BASE + n, f"Synthetic {n}", f"SYN{n}", f"synthetic-{n}",
                    Decimal(n) + Decimal("0.125"), 1000 + n)


def _figure(value: int | None, name: str) -> int:
    return UNLIMITED[name] if value is None else value


def _next_month(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _in_words(seconds: float) -> str:
    """CoinMarketCap's human-readable reset, e.g. "In 19 hours, 56 minutes"."""
    minutes = max(0, int(seconds // 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}"
             for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]
    return "In " + (", ".join(parts) or "less than a minute")
