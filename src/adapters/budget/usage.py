"""The /usage figures of the credit budget, from what the governor read on its board."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from src.domain.model import Purpose
from src.domain.spending import BudgetDay, SpendingPolicy, Spent


def usage_report(now: datetime, policy: SpendingPolicy, plan_source: str, day: BudgetDay,
                 spent: Spent, calls: int, verdicts: list[tuple[datetime, int]],
                 hot: int) -> dict[str, Any]:
    """Plain data for /usage and /metrics: the plan, today's credits by purpose, this minute's
    calls, a CoinMarketCap verdict in force, and the freshness bound the plan holds."""
    blocked = [(until, code) for until, code in verdicts if until > now]
    bound = policy.bound_held(max(1, hot))
    return {
        "plan": {"daily_credits": policy.daily_credits,
                 "calls_per_minute": policy.calls_per_minute, "source": plan_source},
        "today": {
            "date": now.date().isoformat(),
            "credits_used": spent.total,
            "credits_left": max(0, policy.daily_credits - spent.total),
            "by_purpose": {p.value: spent.of(p) for p in Purpose},
            "spent_elsewhere": spent.elsewhere,
            "request_reserve": policy.request_reserve,
            "refresh_need": policy.refresh_need(day, hot),
            "convert_cap": policy.convert_cap(spent, day, hot),
            "resets_at": now + timedelta(seconds=day.seconds_left),
        },
        "minute": {"calls": calls, "calls_left": max(0, policy.calls_per_minute - calls)},
        "blocked": (
            {"upstream_code": max(blocked)[1], "until": max(blocked)[0]} if blocked else None
        ),
        "freshness": {"bound_held_seconds": math.ceil(bound),
                      "holds_max_age": policy.holds_max_age(max(1, hot))},
    }
