"""The spending rules (src/domain/spending.py), each against the plain policy: figures in,
decisions out; no counters, memcached or clocks."""

from __future__ import annotations

import pytest

from src.domain.errors import (
    BudgetSpent,
    InvalidCurrency,
    ProviderTimeout,
    ProviderUnavailable,
)
from src.domain.freshness import due_after_seconds
from src.domain.model import Fetched, Purpose
from src.domain.spending import (
    BudgetDay,
    SpendingPolicy,
    Spent,
    call_cost,
    call_purpose,
    paid_call,
    room_in_call,
)
from tests.fakes import verdict
from tests.fakes_refresh import FakeCreditGovernor

DAY = 86_400.0
MORNING = BudgetDay(seconds_gone=0, seconds_left=DAY)
NOON = BudgetDay(seconds_gone=DAY / 2, seconds_left=DAY / 2)
BASIC = SpendingPolicy(daily_credits=333, calls_per_minute=30, convert_share=0.5,
                       max_age_seconds=300)


# -- what a call costs --------------------------------------------------------------------------

@pytest.mark.parametrize(("coins", "credits", "room"),
                         [(0, 1, 100), (1, 1, 99), (100, 1, 0), (101, 2, 99), (250, 3, 50)])
def test_a_call_costs_a_credit_per_100_coins_and_carries_the_rest_free(coins, credits, room):
    assert call_cost(coins) == credits
    assert room_in_call(coins) == room


def test_a_quote_is_due_for_a_refresh_at_half_its_max_age_or_a_minute_without_one():
    assert due_after_seconds(300) == 150
    assert due_after_seconds(None) == 60


# -- the order: requests, refresh-ahead's need, conversions, then refresh again ------------

def test_requests_may_spend_every_credit_that_refresh_ahead_does_not_need():
    assert BASIC.refusal(Purpose.REQUEST, 1, Spent(request=332), MORNING, 0) is None
    assert BASIC.refusal(Purpose.REQUEST, 1, Spent(request=333), MORNING, 0) is not None


def test_requests_beyond_their_reserve_come_after_what_refresh_ahead_needs():
    # 288 needed for 100 hot symbols all day: 45 are left for anyone else, and 34 are theirs.
    assert BASIC.refusal(Purpose.REQUEST, 1, Spent(request=44), MORNING, 100) is None
    assert "fresh" in BASIC.refusal(Purpose.REQUEST, 1, Spent(request=45), MORNING, 100)
    # Their reserve stays theirs even when the plan is too small for the bound.
    tiny = SpendingPolicy(100, 30, max_age_seconds=300)
    assert tiny.refusal(Purpose.REQUEST, 1, Spent(refresh=89, request=9), MORNING, 100) is None
    assert tiny.refusal(Purpose.REQUEST, 1, Spent(refresh=89, request=10), MORNING, 100)


def test_a_tenth_of_the_day_is_kept_for_requests_alone():
    assert BASIC.request_reserve == 34
    left = Spent(refresh=299)  # 333 - 34
    assert BASIC.refusal(Purpose.REFRESH, 1, left, MORNING, 50) is not None
    assert BASIC.refusal(Purpose.REFRESH, 1, Spent(refresh=298), MORNING, 50) is None
    # What requests spent of it is spent: what they have not is all that is held for them.
    assert BASIC.refusal(Purpose.REFRESH, 1, Spent(refresh=298, request=10), MORNING, 50) is None
    assert BASIC.refusal(Purpose.REFRESH, 1, Spent(refresh=299, request=10), MORNING, 50)


def test_a_tenth_of_the_minute_is_kept_for_requests_alone():
    assert BASIC.calls_allowed(Purpose.REQUEST) == 30
    assert BASIC.calls_allowed(Purpose.REFRESH) == BASIC.calls_allowed(Purpose.CONVERT) == 27


def test_refresh_ahead_needs_a_round_per_max_age_for_the_rest_of_the_day():
    assert BASIC.refresh_need(MORNING, 100) == 288  # 86,400 s / 300 s, one credit a round
    assert BASIC.refresh_need(NOON, 100) == 144
    assert BASIC.refresh_need(MORNING, 101) == 576  # two credits a round
    assert BASIC.refresh_need(MORNING, 0) == 0  # nothing hot: nothing needed
    no_bound = SpendingPolicy(333, 30, max_age_seconds=None)
    assert no_bound.refresh_need(MORNING, 100) == 0


def test_refresh_ahead_needs_a_round_a_minute_at_most_or_what_a_configured_interval_runs():
    short_bound = SpendingPolicy(333, 30, max_age_seconds=10)
    slower = SpendingPolicy(333, 30, max_age_seconds=300, interval_seconds=600)
    faster = SpendingPolicy(3333, 30, max_age_seconds=300, interval_seconds=150)
    assert short_bound.refresh_need(MORNING, 1) == 1440
    assert slower.refresh_need(MORNING, 1) == 144
    assert faster.refresh_need(MORNING, 1) == 576  # not adapted to others: its rounds come first


def test_conversions_get_what_refresh_ahead_leaves_on_basic():
    # 333 - 34 reserved - 288 for refresh-ahead: 11 for conversions, though their share is 166.
    assert BASIC.convert_cap(Spent(), MORNING, 50) == 11
    assert BASIC.refusal(Purpose.CONVERT, 1, Spent(convert=10), MORNING, 50) is None
    assert "fresh" in BASIC.refusal(Purpose.CONVERT, 1, Spent(convert=11), MORNING, 50)


def test_conversions_never_pass_their_share_of_the_day():
    rich = SpendingPolicy(daily_credits=10_000, calls_per_minute=300, convert_share=0.1,
                          max_age_seconds=300)
    assert rich.convert_cap(Spent(), MORNING, 50) == 1000
    assert "10%" in rich.refusal(Purpose.CONVERT, 1, Spent(convert=1000), MORNING, 50)


def test_requests_beyond_the_reserve_leave_conversions_less():
    assert BASIC.convert_cap(Spent(request=40), MORNING, 50) == 333 - 288 - 40
    assert BASIC.convert_cap(Spent(request=45), MORNING, 50) == 0
    assert BASIC.convert_cap(Spent(request=5), NOON, 50) == 333 - 29 - 144 - 5


def test_without_hot_symbols_conversions_get_their_whole_share():
    assert BASIC.convert_cap(Spent(), MORNING, 0) == 166


def test_the_interval_spreads_what_nobody_else_will_spend_over_the_rest_of_the_day():
    # Conversions idle: nothing is held for them, 299 rounds of one credit.
    assert BASIC.refresh_interval(Spent(), MORNING, 100) == pytest.approx(DAY / 299)
    # Conversions spent 10 this morning: at that pace 10 more are held for the afternoon.
    afternoon = Spent(refresh=100, convert=10)
    assert BASIC.refresh_interval(afternoon, NOON, 100) == pytest.approx(
        (DAY / 2) / (333 - 34 - 110 - 10))
    # ... but never more than what they may still spend after refresh-ahead's need.
    late = Spent(refresh=140, convert=10)
    assert BASIC.refresh_interval(late, NOON, 100) == pytest.approx(
        (DAY / 2) / (333 - 34 - 150 - (333 - 34 - 144 - 140 - 10)))


def test_on_basic_with_the_defaults_rounds_are_at_most_the_max_age_apart():
    for hot in (1, 50, 100):
        assert BASIC.refresh_interval(Spent(), MORNING, hot) <= 300
    # ... and conversions still get what is left.
    assert BASIC.convert_cap(Spent(), MORNING, 100) > 0


def test_the_interval_is_never_below_a_minute_and_a_configured_one_wins():
    rich = SpendingPolicy(10_000_000, 10_000, max_age_seconds=300)
    configured = SpendingPolicy(333, 30, interval_seconds=5)
    assert rich.refresh_interval(Spent(), MORNING, 100) == 60
    assert configured.refresh_interval(Spent(), MORNING, 100) == 5


def test_with_nothing_left_the_next_round_waits_for_the_next_day():
    assert BASIC.refresh_interval(Spent(request=333), NOON, 100) == DAY / 2


def test_a_plan_too_small_for_the_bound_says_what_bound_it_holds():
    tiny = SpendingPolicy(daily_credits=100, calls_per_minute=30, max_age_seconds=300)
    assert tiny.bound_held() == pytest.approx(DAY / 90)
    assert not tiny.holds_max_age()
    assert BASIC.holds_max_age()
    assert BASIC.bound_held() == pytest.approx(DAY / 299)


# -- paying for a call: reserve the estimate, settle to what was charged -------------------------

def test_a_call_is_reserved_at_its_expected_cost_and_settled_to_what_was_charged():
    governor = FakeCreditGovernor()

    paid_call(governor, Purpose.REFRESH, 150, lambda: Fetched(credits=3))

    assert governor.reserved == [(Purpose.REFRESH, 2)]
    assert governor.settled == [(Purpose.REFRESH, 2, 3)]


@pytest.mark.parametrize(("error", "charged"), [
    (InvalidCurrency("unknown convert currency"), 0),  # a 400: errors cost nothing
    (ProviderUnavailable("CoinMarketCap is unavailable"), 0),
    (ProviderTimeout("CoinMarketCap did not answer in time"), None),  # may have been charged
])
def test_a_failed_call_settles_to_what_its_failure_cost(error, charged):
    governor = FakeCreditGovernor()

    def fail():
        raise error

    with pytest.raises(type(error)):
        paid_call(governor, Purpose.CONVERT, 1, fail)

    assert governor.settled == [(Purpose.CONVERT, 1, charged)]


def test_a_limit_verdict_settles_to_nothing_and_is_honoured_by_every_process():
    governor = FakeCreditGovernor()

    def refused():
        raise verdict(1009, 3600)

    with pytest.raises(ProviderUnavailable):
        paid_call(governor, Purpose.REQUEST, 1, refused)

    assert governor.settled == [(Purpose.REQUEST, 1, 0)]
    assert governor.honoured == [(1009, 3600)]


def test_a_call_the_budget_refuses_is_not_made():
    governor = FakeCreditGovernor(allowed=0)
    made = []

    with pytest.raises(BudgetSpent):
        paid_call(governor, Purpose.REFRESH, 1, lambda: made.append(1))

    assert made == [] and governor.settled == []


def test_a_retry_inside_a_call_is_reserved_for_the_calls_own_purpose():
    seen = []

    paid_call(FakeCreditGovernor(), Purpose.CONVERT, 1,
              lambda: seen.append(call_purpose()) or Fetched(credits=1))

    assert seen == [Purpose.CONVERT]
    assert call_purpose() is Purpose.REQUEST  # outside a call


def test_the_wired_provider_reserves_each_retry_for_the_purpose_of_the_call_it_retries(
        requests_mock):
    # A refresh or conversion retried as a request took the request reserve of the minute.
    from src.bootstrap import build_provider
    from src.entrypoints.settings import Settings
    from tests.unit.cmc_support import BASE, KEY, URL

    governor = FakeCreditGovernor()
    provider = build_provider(Settings(cmc_api_key=KEY, cmc_base_url=BASE), governor)
    provider.sleep = lambda seconds: None
    requests_mock.get(URL, [{"status_code": 500, "json": {"status": {"error_code": 500}}},
                            {"json": {"status": {"error_code": 0, "credit_count": 1},
                                      "data": {}}}])

    paid_call(governor, Purpose.REFRESH, 1,
              lambda: provider.fetch_by_symbols(["BTC"], "USD"))

    assert governor.reserved == [(Purpose.REFRESH, 1), (Purpose.REFRESH, 0)]


def test_a_retry_after_a_timeout_is_reserved_at_the_calls_cost_it_may_be_charged_too():
    # CoinMarketCap may answer a timed-out attempt after we gave up, and charge it.
    import requests

    from src.bootstrap import build_provider
    from src.entrypoints.settings import Settings
    from tests.unit.cmc_support import BASE, KEY, URL

    governor = FakeCreditGovernor()
    provider = build_provider(Settings(cmc_api_key=KEY, cmc_base_url=BASE), governor)
    provider.sleep = lambda seconds: None
    requests_mock_answers = [{"exc": requests.exceptions.ReadTimeout},
                             {"json": {"status": {"error_code": 0, "credit_count": 1},
                                       "data": {}}}]

    import requests_mock as rm
    with rm.Mocker() as mock:
        mock.get(URL, requests_mock_answers)
        paid_call(governor, Purpose.REQUEST, 150,
                  lambda: provider.fetch_by_symbols(["BTC"], "USD"))

    assert governor.reserved == [(Purpose.REQUEST, 2), (Purpose.REQUEST, 2)]
    assert governor.settled == [(Purpose.REQUEST, 2, 1)]
