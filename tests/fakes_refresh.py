"""Hand-written fakes of the refresh-ahead ports (and a scripted credit governor)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from src.domain.errors import BudgetSpent, LimitVerdict
from src.domain.model import Plan, Purpose, RefreshRound
from src.domain.ports import Clock, CreditGovernor, RefreshLease, RequestLog
from tests.fakes import FixedClock


@dataclass
class FakeCreditGovernor(CreditGovernor):
    """Allows `allowed` reservations (None: any number), then raises BudgetSpent.

    `reserved` lists (purpose, credits) of every allowed reservation, `settled` every
    settlement (purpose, reserved, charged), `refunded` what was given back, `honoured` the
    verdicts as (code, retry_after).
    """

    allowed: int | None = None
    interval_seconds: float = 60.0
    reserved: list[tuple[Purpose, int]] = field(default_factory=list)
    settled: list[tuple[Purpose, int, int | None]] = field(default_factory=list)
    refunded: list[tuple[Purpose, int]] = field(default_factory=list)
    honoured: list[tuple[int | None, float | None]] = field(default_factory=list)
    hot_symbols: int | None = None  # as last told by refresh_interval

    def reserve(self, purpose: Purpose, credits: int) -> None:
        if self.allowed is not None and len(self.reserved) >= self.allowed:
            raise BudgetSpent("the credit budget is spent", retry_after=30.0)
        self.reserved.append((purpose, credits))

    def settle(self, purpose: Purpose, reserved: int, charged: int | None) -> None:
        self.settled.append((purpose, reserved, charged))
        if charged is not None and charged < reserved:
            self.refunded.append((purpose, reserved - charged))

    def honour(self, verdict: LimitVerdict) -> None:
        self.honoured.append((verdict.upstream_code, verdict.retry_after))

    def plan(self) -> Plan:
        return Plan(daily_credits=333, calls_per_minute=30, source="default")

    def refresh_interval(self, symbols: int) -> float:
        self.hot_symbols = symbols
        return self.interval_seconds

    def usage(self) -> dict:
        return {"reserved": len(self.reserved)}


@dataclass
class InMemoryRequestLog(RequestLog):
    """Symbol -> last request time; `writes` counts record() calls (one per flush)."""

    last_requested: dict[str, datetime] = field(default_factory=dict)
    writes: list[dict[str, datetime]] = field(default_factory=list)
    fail_with: Exception | None = None

    def record(self, requested: Mapping[str, datetime]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes.append(dict(requested))
        for symbol, at in requested.items():
            if symbol not in self.last_requested or at > self.last_requested[symbol]:
                self.last_requested[symbol] = at

    def requested_since(self, since: datetime) -> list[str]:
        if self.fail_with is not None:
            raise self.fail_with
        recent = [(at, s) for s, at in self.last_requested.items() if at >= since]
        return [s for _, s in sorted(recent, reverse=True)]


@dataclass
class InMemoryRefreshLease(RefreshLease):
    """One lease on `clock`: holder, expiry, last round start, last finished round; `asked`
    counts the calls of every method (each would be a database statement)."""

    clock: Clock = field(default_factory=FixedClock)
    holder: str | None = None
    expires_at: datetime | None = None
    round_started_at: datetime | None = None
    finished: RefreshRound | None = None
    daily: dict[str, datetime] = field(default_factory=dict)
    fail_with: Exception | None = None
    asked: int = 0

    def _check(self) -> None:
        self.asked += 1
        if self.fail_with is not None:
            raise self.fail_with

    def acquire(self, holder: str, ttl_seconds: float, interval_seconds: float) -> bool:
        self._check()
        now = self.clock.now()
        if self.expires_at is not None and self.expires_at > now:
            return False
        if self.round_started_at is not None and now - self.round_started_at < timedelta(seconds=interval_seconds):
            return False
        self.holder, self.expires_at, self.round_started_at = holder, now + timedelta(seconds=ttl_seconds), now
        return True

    def renew(self, holder: str, ttl_seconds: float) -> bool:
        self._check()
        now = self.clock.now()
        if self.holder != holder or self.expires_at is None or self.expires_at <= now:
            return False
        self.expires_at = now + timedelta(seconds=ttl_seconds)
        return True

    def release(self, holder: str, finished: RefreshRound | None = None) -> None:
        self._check()
        if self.holder != holder:
            return
        self.holder, self.expires_at = None, None
        if finished is not None:
            self.finished = finished

    def last_round(self) -> RefreshRound | None:
        self._check()
        return self.finished

    def claim_daily(self, job: str) -> bool:
        self._check()
        now = self.clock.now()
        last = self.daily.get(job)
        if last is not None and now - last < timedelta(days=1):
            return False
        self.daily[job] = now
        return True


def wait_until(condition: Callable[[], object], seconds: float = 2.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
