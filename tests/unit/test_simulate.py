"""The compressed day's arithmetic agrees with the real governor (bench/simulate.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from limits.storage import MemoryStorage

from bench.simulate import derived_interval, plan_requests
from src.adapters.budget.board import LimitsBoard
from src.adapters.budget.governor import SharedCreditGovernor
from tests.fakes import FixedClock

MIDNIGHT = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(("credits", "share", "symbols"), [(333, 0.5, 70), (333, 0.1, 50), (333, 0.0, 150),
                                                         (3333, 0.5, 70)])
def test_the_simulated_interval_is_the_governors_for_a_whole_day(credits, share, symbols):
    governor = SharedCreditGovernor(board=LimitsBoard(MemoryStorage()), clock=FixedClock(MIDNIGHT), daily_credits=credits,
                                    calls_per_minute=30, convert_credit_share=share, max_age_seconds=300)

    assert derived_interval(credits, share, symbols) == pytest.approx(governor.refresh_interval(symbols))


def test_the_traffic_mixes_hot_tail_and_conversions_with_bursts():
    planned = plan_requests(random.Random(1), seconds=240, rate=10, speed=60, tail=300)
    kinds = [kind for _, _, _, kind in planned]
    per_second = [sum(1 for t, *_ in planned if int(t) == s) for s in range(240)]

    assert {"hot", "tail", "convert"} <= set(kinds)
    assert kinds.count("hot") > 0.8 * len(kinds)
    assert max(per_second[30:33]) > 2 * (sum(per_second[5:25]) / 20)  # a burst each simulated half hour
