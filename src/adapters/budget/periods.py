"""When the plan's periods end (the minute, the UTC day, the month), and the BudgetSpent that
names the wait until then."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from src.domain.errors import BudgetSpent


def budget_spent(wait: timedelta, why: str, code: int | None = None) -> BudgetSpent:
    seconds = max(1, math.ceil(wait.total_seconds()))
    return BudgetSpent(f"the CoinMarketCap credit budget is spent: {why}; try again in {seconds} s",
                       retry_after=seconds, upstream_code=code)


def next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def next_midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
