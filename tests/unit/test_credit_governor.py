"""The credit governor's rules (README "Freshness and credits"), over the in-process `limits` storage and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from limits.storage import MemoryStorage, Storage

from src.adapters.budget.board import LimitsBoard
from src.adapters.budget.governor import SharedCreditGovernor
from src.adapters.budget.notes import budget_namespace
from src.adapters.coinmarketcap.key_info import KeyInfo
from src.domain.errors import BudgetSpent, ProviderUnavailable
from src.domain.model import Plan, Purpose
from tests.fakes import FixedClock, verdict

MIDNIGHT = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
NOON = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


class KeyInfoReader:
    """Stands in for CoinMarketCapKeyInfo.read: answers `info` (or raises `fail_with`), counted."""

    def __init__(self, info: KeyInfo | None = None, fail_with: Exception | None = None) -> None:
        self.info = info
        self.fail_with = fail_with
        self.reads = 0

    def __call__(self) -> KeyInfo:
        self.reads += 1
        if self.fail_with is not None:
            raise self.fail_with
        return self.info


class BrokenStorage(Storage):
    """A `limits` storage whose server is gone (memcached down): every operation fails."""

    STORAGE_SCHEME = ["broken"]

    def __init__(self) -> None:
        super().__init__("broken://")

    @property
    def base_exceptions(self):
        return ConnectionRefusedError

    def incr(self, *args, **kwargs):
        raise ConnectionRefusedError("memcached is down")

    get = decr = get_expiry = clear = reset = incr

    def check(self) -> bool:
        return False


def governor(clock=None, storage=None, **options) -> SharedCreditGovernor:
    options.setdefault("daily_credits", 20)
    options.setdefault("calls_per_minute", 1000)
    return SharedCreditGovernor(board=LimitsBoard(storage or MemoryStorage()), clock=clock or FixedClock(NOON),
                                **options)


def spend(gov: SharedCreditGovernor, purpose: Purpose, times: int) -> int:
    """Reserve one credit `times` times; return how many were allowed."""
    allowed = 0
    for _ in range(times):
        try:
            gov.reserve(purpose, 1)
            allowed += 1
        except BudgetSpent:
            pass
    return allowed


def test_requests_may_spend_every_credit_of_the_day_then_get_the_budget_message():
    gov = governor()

    allowed = spend(gov, Purpose.REQUEST, 20)
    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)

    assert allowed == 20
    assert "credit budget is spent" in str(refused.value)
    assert refused.value.retry_after == (MIDNIGHT + timedelta(days=1) - NOON).total_seconds()


def test_refresh_stops_before_the_reserve_kept_for_requests():
    gov = governor()

    refreshed = spend(gov, Purpose.REFRESH, 25)

    assert refreshed == 18  # 20 less a 10 % reserve
    assert spend(gov, Purpose.REQUEST, 5) == 2


def test_conversions_stop_at_their_share_of_the_day():
    gov = governor(convert_credit_share=0.5)

    assert spend(gov, Purpose.CONVERT, 15) == 10
    assert spend(gov, Purpose.REFRESH, 15) == 8


def test_requests_beyond_their_reserve_leave_conversions_only_what_is_left_above_it():
    gov = governor(convert_credit_share=0.5)
    spend(gov, Purpose.REQUEST, 12)  # of 20, their reserve of 2 included: 8 are left

    assert spend(gov, Purpose.CONVERT, 10) == 8


def test_a_refused_reservation_spends_nothing():
    gov = governor(convert_credit_share=0.1)
    spend(gov, Purpose.CONVERT, 5)

    assert gov.usage()["today"]["by_purpose"] == {"request": 0, "refresh": 0, "convert": 2}
    assert gov.usage()["minute"]["calls"] == 2


def test_calls_beyond_the_minute_wait_for_the_next_minute():
    clock = FixedClock(NOON)
    gov = governor(clock, calls_per_minute=3, daily_credits=1000)

    allowed = spend(gov, Purpose.REQUEST, 5)
    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)
    clock.advance(30)

    assert allowed == 3
    assert refused.value.retry_after == 30
    assert spend(gov, Purpose.REQUEST, 1) == 1


def test_lower_purposes_leave_a_tenth_of_the_minute_to_requests():
    gov = governor(calls_per_minute=10, daily_credits=1000)

    assert spend(gov, Purpose.REFRESH, 10) == 9
    assert spend(gov, Purpose.REQUEST, 10) == 1


def test_day_counters_start_again_on_the_next_utc_day():
    clock = FixedClock(NOON)
    gov = governor(clock)
    spend(gov, Purpose.REQUEST, 20)

    clock.advance(12 * 3600)

    assert spend(gov, Purpose.REQUEST, 1) == 1
    assert gov.usage()["today"]["credits_used"] == 1


def test_every_process_sharing_the_storage_counts_against_one_budget():
    storage = MemoryStorage()
    first, second = governor(storage=storage), governor(storage=storage)

    spend(first, Purpose.REQUEST, 15)

    assert spend(second, Purpose.REQUEST, 10) == 5


# -- CoinMarketCap's verdicts ----------------------------------------------------------------


def test_after_1008_nobody_calls_before_the_next_minute():
    storage, clock = MemoryStorage(), FixedClock(NOON)
    gov, other = governor(clock, storage), governor(clock, storage)

    gov.honour(verdict(1008))
    with pytest.raises(BudgetSpent) as refused:
        other.reserve(Purpose.REQUEST, 1)
    clock.advance(30)

    assert refused.value.retry_after == 30
    assert refused.value.upstream_code == 1008
    assert spend(other, Purpose.REQUEST, 1) == 1


def test_after_1009_nobody_calls_before_the_daily_reset_that_key_info_reports():
    storage, clock = MemoryStorage(), FixedClock(NOON)
    reset = NOON + timedelta(minutes=5)
    reader = KeyInfoReader(KeyInfo(daily_credits=100, calls_per_minute=30, daily_reset=reset))
    gov = governor(clock, storage, daily_credits=None, calls_per_minute=None, read_key_info=reader)
    other = governor(clock, storage, daily_credits=None, calls_per_minute=None, read_key_info=reader)

    gov.honour(verdict(1009))
    with pytest.raises(BudgetSpent) as refused:
        other.reserve(Purpose.REQUEST, 1)
    clock.advance(301)

    assert refused.value.retry_after == 300
    assert spend(other, Purpose.REQUEST, 1) == 1


def test_after_1009_without_key_info_the_wait_is_until_the_next_utc_midnight():
    gov = governor()

    gov.honour(verdict(1009))

    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)
    assert refused.value.retry_after == (MIDNIGHT + timedelta(days=1) - NOON).total_seconds()


def test_after_1010_the_wait_is_until_the_monthly_reset():
    gov = governor()

    gov.honour(verdict(1010))

    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)
    assert refused.value.retry_after == (datetime(2026, 12, 1, tzinfo=UTC) - NOON).total_seconds()


def test_a_retry_after_longer_than_the_minute_is_honoured():
    gov = governor()

    gov.honour(verdict(1011, 90))

    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REFRESH, 1)
    assert refused.value.retry_after == 90


# -- the plan ----------------------------------------------------------------------------------


def test_configured_figures_are_the_plan_and_key_info_is_never_read():
    reader = KeyInfoReader(KeyInfo(daily_credits=5, calls_per_minute=5))
    gov = governor(daily_credits=50, calls_per_minute=7, read_key_info=reader)

    assert gov.plan() == Plan(50, 7, "configured")
    assert reader.reads == 0


def test_without_configuration_the_plan_is_read_from_key_info_once_every_few_minutes():
    storage, clock = MemoryStorage(), FixedClock(NOON)
    reader = KeyInfoReader(KeyInfo(daily_credits=30, calls_per_minute=5))
    processes = [governor(clock, storage, daily_credits=None, calls_per_minute=None,
                          read_key_info=reader) for _ in range(3)]

    plans = [p.plan() for p in processes for _ in range(10)]
    clock.advance(301)
    processes[0].plan()

    assert set(plans) == {Plan(30, 5, "key_info")}
    assert reader.reads == 2


def test_reading_key_info_counts_against_the_minute():
    reader = KeyInfoReader(KeyInfo(daily_credits=30, calls_per_minute=3))
    gov = governor(daily_credits=None, calls_per_minute=None, read_key_info=reader)

    assert spend(gov, Purpose.REQUEST, 5) == 2


def test_when_key_info_cannot_be_read_the_basic_plan_is_assumed():
    reader = KeyInfoReader(fail_with=ProviderUnavailable("down"))
    gov = governor(daily_credits=None, calls_per_minute=None, read_key_info=reader)

    assert gov.plan() == Plan(333, 30, "default")


# -- the refresh interval ---------------------------------------------------------------------


def test_the_refresh_interval_spreads_what_nobody_else_spends_over_the_rest_of_the_day():
    clock = FixedClock(MIDNIGHT)
    basic = governor(clock, daily_credits=333, calls_per_minute=30, max_age_seconds=300)

    # 333 less a reserve of 34 for requests; conversions have not spent: nothing held for them.
    assert basic.refresh_interval(100) == pytest.approx(86_400 / 299)
    assert basic.refresh_interval(101) == pytest.approx(86_400 / 149)
    clock.advance(43_200)  # noon: conversions spent 5 this morning, 5 more are held for them
    spend(basic, Purpose.CONVERT, 5)
    assert basic.refresh_interval(100) == pytest.approx(43_200 / (299 - 5 - 5))


def test_the_refresh_interval_is_never_below_a_minute_unless_configured():
    rich = governor(daily_credits=10_000_000)
    configured = governor(refresh_interval_seconds=5)

    assert rich.refresh_interval(100) == 60
    assert configured.refresh_interval(100) == 5


def test_with_nothing_left_for_refresh_the_next_round_waits_for_the_next_day():
    gov = governor()
    spend(gov, Purpose.REQUEST, 20)

    assert gov.refresh_interval(10) == (MIDNIGHT + timedelta(days=1) - NOON).total_seconds()


# -- usage and failures ------------------------------------------------------------------------


def test_usage_reports_the_plan_and_todays_credits_by_purpose():
    gov = governor()
    spend(gov, Purpose.REQUEST, 3)
    spend(gov, Purpose.REFRESH, 2)
    spend(gov, Purpose.CONVERT, 1)

    usage = gov.usage()

    assert usage["plan"] == {"daily_credits": 20, "calls_per_minute": 1000, "source": "configured"}
    assert usage["today"]["credits_used"] == 6
    assert usage["today"]["credits_left"] == 14
    assert usage["today"]["by_purpose"] == {"request": 3, "refresh": 2, "convert": 1}


def test_a_failing_storage_allows_no_call_and_never_raises_but_budget_spent():
    # Processes counting alone would together spend beyond the plan (the chaos run's 1008s).
    gov = governor(storage=BrokenStorage())

    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)
    allowed = spend(gov, Purpose.REQUEST, 5)
    gov.honour(verdict(1008))

    assert allowed == 0
    assert "cannot be reached" in str(refused.value) and refused.value.retry_after == 10
    assert gov.usage()["blocked"]["upstream_code"] == 1008

def test_credits_coinmarketcap_counted_beyond_ours_are_counted_too():
    # memcached restarted, or another client shares the key: key info knows better.
    reader = KeyInfoReader(KeyInfo(daily_credits=20, calls_per_minute=30, credits_used_today=15,
                                   daily_reset=MIDNIGHT + timedelta(days=1)))
    gov = governor(daily_credits=None, calls_per_minute=None, read_key_info=reader)

    allowed = spend(gov, Purpose.REQUEST, 10)

    assert allowed == 5
    assert gov.usage()["today"]["spent_elsewhere"] == 15
    assert gov.usage()["today"]["credits_used"] == 20


def test_a_plan_whose_day_is_not_the_utc_day_is_not_caught_up():
    reader = KeyInfoReader(KeyInfo(daily_credits=20, calls_per_minute=30, credits_used_today=15,
                                   daily_reset=NOON + timedelta(hours=3)))
    gov = governor(daily_credits=None, calls_per_minute=None, read_key_info=reader)

    assert spend(gov, Purpose.REQUEST, 25) == 20


def test_budgets_of_different_keys_sharing_a_storage_never_mix():
    storage = MemoryStorage()
    ours = governor(storage=storage, namespace=budget_namespace("https://pro", "key-a"))
    theirs = governor(storage=storage, namespace=budget_namespace("https://pro", "key-b"))
    spend(theirs, Purpose.REQUEST, 20)
    theirs.honour(verdict(1009))

    assert spend(ours, Purpose.REQUEST, 20) == 20
    assert "key-a" not in budget_namespace("https://pro", "key-a")


def test_a_refund_gives_back_the_days_credits_but_not_the_minutes_call():
    gov = governor(calls_per_minute=1000)
    spend(gov, Purpose.CONVERT, 3)

    gov.settle(Purpose.CONVERT, 2, 0)

    assert gov.usage()["today"]["by_purpose"]["convert"] == 1
    assert gov.usage()["minute"]["calls"] == 3


def test_a_refund_after_utc_midnight_gives_back_to_the_day_it_was_reserved_on():
    clock = FixedClock(MIDNIGHT - timedelta(milliseconds=500))
    storage = MemoryStorage()
    failing, other = governor(clock, storage), governor(clock, storage)
    failing.reserve(Purpose.REQUEST, 1)  # its call fails after midnight (no credit charged)
    clock.advance(1)
    other.reserve(Purpose.REQUEST, 1)

    failing.settle(Purpose.REQUEST, 1, 0)

    # Given back to today, the credit `other` spent today would be counted by nobody.
    assert other.usage()["today"]["credits_used"] == 1


def test_key_info_read_across_utc_midnight_is_not_caught_up_into_the_new_day():
    clock = FixedClock(MIDNIGHT - timedelta(milliseconds=200))

    class ReadAcrossMidnight(KeyInfoReader):
        def __call__(self) -> KeyInfo:
            clock.advance(0.5)  # answered (yesterday's count, no reset time) after midnight
            return super().__call__()

    reader = ReadAcrossMidnight(KeyInfo(daily_credits=20, calls_per_minute=30,
                                        credits_used_today=18))
    gov = governor(clock, daily_credits=None, calls_per_minute=None, read_key_info=reader)

    assert spend(gov, Purpose.REQUEST, 5) == 5
    assert gov.usage()["today"]["spent_elsewhere"] == 0


def test_a_process_that_knows_no_plan_reads_key_info_itself_when_another_reader_failed():
    storage, clock = MemoryStorage(), FixedClock(NOON)
    reader = KeyInfoReader(fail_with=ProviderUnavailable("timed out"))
    first, second = (governor(clock, storage, daily_credits=None, calls_per_minute=None,
                              read_key_info=reader) for _ in range(2))
    first.plan()  # took this 30 s's read, which failed: no plan shared
    reader.fail_with, reader.info = None, KeyInfo(daily_credits=30, calls_per_minute=5)

    # Not the Basic plan's 333 credits, ten times what the key may spend.
    assert second.plan() == Plan(30, 5, "key_info")


class FailingLaterStorage(BrokenStorage):
    """A `limits` storage (memcached) that works until `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.down = MemoryStorage(), False

    def _call(self, name, *args, **kwargs):
        if self.down:
            raise ConnectionRefusedError("memcached is down")
        return getattr(self.inner, name)(*args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def decr(self, *args, **kwargs):
        return self._call("decr", *args, **kwargs)


def test_when_the_shared_counters_fail_no_call_is_made_until_they_answer_again():
    storage = FailingLaterStorage()
    gov = governor(storage=storage)
    spend(gov, Purpose.REQUEST, 15)

    storage.down = True
    assert spend(gov, Purpose.REQUEST, 20) == 0
    assert gov.usage()["today"]["credits_used"] == 15  # its own figures: what it last read

    storage.down = False
    gov._shared_down_until = 0  # the retry pause (10 s) over
    assert spend(gov, Purpose.REQUEST, 20) == 5

def test_a_call_is_settled_to_what_coinmarketcap_charged():
    gov = governor()
    gov.reserve(Purpose.REQUEST, 1)
    gov.settle(Purpose.REQUEST, 1, 3)  # namesakes pushed the call past 100 coins
    gov.reserve(Purpose.CONVERT, 1)
    gov.settle(Purpose.CONVERT, 1, 0)  # an uncharged error answer
    gov.reserve(Purpose.REFRESH, 1)
    gov.settle(Purpose.REFRESH, 1, None)  # a timeout: it may have been charged

    assert gov.usage()["today"]["by_purpose"] == {"request": 3, "refresh": 1, "convert": 0}
    assert gov.usage()["minute"]["calls"] == 3


def test_a_shorter_verdict_never_shortens_a_longer_one_in_force():
    clock = FixedClock(NOON)
    gov = governor(clock)
    gov.honour(verdict(1011, 90))
    gov.honour(verdict(1008))  # until the next minute: 30 s

    clock.advance(45)
    with pytest.raises(BudgetSpent) as refused:
        gov.reserve(Purpose.REQUEST, 1)
    assert refused.value.upstream_code == 1011


def test_the_conversions_share_leaves_what_refresh_ahead_needs_for_the_hot_symbols():
    clock = FixedClock(MIDNIGHT)
    gov = governor(clock, daily_credits=333, calls_per_minute=30, max_age_seconds=300)
    gov.refresh_interval(50)  # the refresher says 50 symbols are hot

    assert spend(gov, Purpose.CONVERT, 50) == 333 - 34 - 288
    assert gov.usage()["today"]["refresh_need"] == 288


def test_every_governor_on_a_board_knows_how_many_symbols_are_hot():
    storage = MemoryStorage()
    refresher = governor(FixedClock(MIDNIGHT), storage=storage, daily_credits=333,
                         max_age_seconds=300)
    worker = governor(FixedClock(MIDNIGHT), storage=storage, daily_credits=333,
                      max_age_seconds=300)

    before = worker.usage()["today"]["convert_cap"]
    refresher.refresh_interval(50)

    assert (before, worker.usage()["today"]["convert_cap"]) == (166, 333 - 34 - 288)


def test_a_plan_too_small_for_the_max_age_says_so_once_with_the_bound_it_holds(caplog):
    gov = governor(daily_credits=100, calls_per_minute=30, max_age_seconds=300)

    gov.plan()
    gov.plan()

    warnings = [r.getMessage() for r in caplog.records if "cannot keep hot quotes" in r.getMessage()]
    assert len(warnings) == 1 and "960 s" in warnings[0]
    assert governor(daily_credits=333, max_age_seconds=300).plan() and len(
        [r for r in caplog.records if "cannot keep" in r.getMessage()]) == 1


def test_before_its_refresher_says_anything_refresh_ahead_needs_a_round_per_max_age():
    # A deployment starting: conversions must not take what the first hot symbols will need.
    gov = governor(FixedClock(MIDNIGHT), daily_credits=333, max_age_seconds=300,
                   refresh_ahead=True)
    gov.refresh_interval(0)  # a first round over nothing says nothing

    assert gov.usage()["today"]["refresh_need"] == 288
    assert spend(gov, Purpose.CONVERT, 50) == 333 - 34 - 288
