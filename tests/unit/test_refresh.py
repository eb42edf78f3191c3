"""Refresh rounds, proven with in-memory fakes: what is fetched, how, and who runs each round."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from src.domain.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    StorageError,
)
from src.domain.model import Purpose
from src.domain.refresh import Refresher, RefreshPolicy, RefreshStatus
from tests.fakes import FakeQuoteProvider, coin_quote, verdict
from tests.fakes_refresh import FakeCreditGovernor, wait_until

WINDOW = 900
SYMBOLS = [f"C{i}" for i in range(250)]


@pytest.fixture
def provider(clock):
    market = {s: coin_quote(s, i + 1, f"{i + 1}.5", fetched_at=clock.now()) for i, s in enumerate(SYMBOLS)}
    return FakeQuoteProvider(market)


@pytest.fixture
def governor():
    return FakeCreditGovernor()


@pytest.fixture
def make_refresher(provider, repo, cache, governor, log, lease, clock):
    def make(holder: str = "refresher-1", **policy) -> Refresher:
        policy = {"window_seconds": WINDOW, "interval_seconds": 60, "cache_ttl_seconds": 45, **policy}
        return Refresher(provider=provider, repository=repo, cache=cache, governor=governor,
                         request_log=log, lease=lease, clock=clock, policy=RefreshPolicy(**policy),
                         holder=holder)
    return make


def requested(log, clock, symbols, seconds_ago=0):
    log.record(dict.fromkeys(symbols, clock.now() - timedelta(seconds=seconds_ago)))


def test_round_refreshes_the_symbols_requested_within_the_window_only(make_refresher, log, clock, provider,
                                                                      repo, cache):
    requested(log, clock, ["C1", "C2"], seconds_ago=10)
    requested(log, clock, ["C3"], seconds_ago=WINDOW + 1)

    done = make_refresher(ride_along_seconds=0).run_round()

    assert [set(call[1]) for call in provider.calls] == [{"C1", "C2"}]
    assert {symbol for symbol, _ in repo.rows} == {"C1", "C2"}
    assert cache.sets == [({"C1": provider.market["C1"], "C2": provider.market["C2"]}, 45)]
    assert (done.symbols, done.refreshed, done.calls, done.stopped) == (2, 2, 1, None)


def test_round_makes_one_call_and_reserves_one_refresh_credit_per_100_symbols(make_refresher, log, clock,
                                                                              provider, governor):
    requested(log, clock, SYMBOLS)

    done = make_refresher().run_round()

    assert [len(call[1]) for call in provider.calls] == [100, 100, 50]
    assert sorted(s for call in provider.calls for s in call[1]) == sorted(SYMBOLS)
    assert governor.reserved == [(Purpose.REFRESH, 1)] * 3
    assert (done.refreshed, done.calls) == (250, 3)


def test_most_recently_requested_symbols_go_first(make_refresher, log, clock, provider, governor):
    requested(log, clock, SYMBOLS[:150], seconds_ago=300)
    requested(log, clock, SYMBOLS[150:], seconds_ago=5)
    governor.allowed = 1

    make_refresher().run_round()

    assert set(provider.calls[0][1]) == set(SYMBOLS[150:])


def test_spent_budget_ends_the_round_without_calling_again(make_refresher, log, clock, provider, governor):
    requested(log, clock, SYMBOLS)
    governor.allowed = 1

    done = make_refresher().run_round()

    assert len(provider.calls) == 1
    assert (done.calls, done.refreshed, done.stopped) == (1, 100, "budget")


def test_every_call_ends_before_its_own_deadline(make_refresher, log, clock, provider):
    requested(log, clock, SYMBOLS[:1])

    make_refresher(call_seconds=7).run_round()

    assert provider.deadlines[0] is not None
    assert provider.deadlines[0].remaining() == pytest.approx(7)


def test_a_limit_verdict_is_honoured_for_everyone_and_ends_the_round(make_refresher, log, clock, provider,
                                                                     governor):
    requested(log, clock, SYMBOLS)
    provider.fail_with = verdict(1009, 3600)

    done = make_refresher().run_round()

    assert governor.honoured == [(1009, 3600)]
    assert len(provider.calls) == 1
    assert done.stopped == "provider"


def test_an_unusable_answer_for_one_batch_does_not_stop_the_next(make_refresher, log, clock, provider):
    requested(log, clock, SYMBOLS)
    provider.fail_with = ProviderError("unusable answer")

    done = make_refresher().run_round()

    assert len(provider.calls) == 3
    assert (done.refreshed, done.stopped) == (0, None)


def test_a_failed_store_still_caches_the_fresh_quotes(make_refresher, log, clock, repo, cache):
    requested(log, clock, ["C1"])
    repo.fail_with = StorageError("database down")

    done = make_refresher().run_round()

    assert cache.get_many(["C1"], "USD") != {}
    assert done.refreshed == 1


def test_a_second_refresher_does_nothing_until_the_interval_has_passed(make_refresher, log, clock, provider):
    requested(log, clock, ["C1"])
    first, second = make_refresher("a"), make_refresher("b")
    first.run_round()

    clock.advance(30)
    skipped = second.run_round()
    clock.advance(31)
    ran = second.run_round()

    assert skipped is None
    assert ran is not None
    assert len(provider.calls) == 2


def test_a_lease_left_by_a_killed_refresher_expires_and_the_next_round_runs(make_refresher, log, clock, lease,
                                                                            provider):
    requested(log, clock, ["C1"])
    lease.acquire("killed", ttl_seconds=15, interval_seconds=1)  # taken, never released
    survivor = make_refresher("survivor", interval_seconds=1, call_seconds=10, lease_margin_seconds=5)

    clock.advance(14)
    blocked = survivor.run_round()
    clock.advance(2)
    ran = survivor.run_round()

    assert blocked is None
    assert ran is not None and ran.refreshed == 1


def test_a_round_that_lost_its_lease_stops_before_the_next_batch(make_refresher, log, clock, lease, provider):
    requested(log, clock, SYMBOLS)
    # The first call outlasts the lease; another refresher takes it over meanwhile.
    provider.clock, provider.latency_seconds = clock, 20
    clock.schedule(16, lambda: lease.acquire("other", ttl_seconds=15, interval_seconds=0))

    done = make_refresher(call_seconds=30, lease_margin_seconds=-15).run_round()

    assert len(provider.calls) == 1
    assert done.stopped == "lease"


def test_window_zero_turns_refresh_ahead_off(make_refresher, log, clock, provider):
    requested(log, clock, ["C1"])

    done = make_refresher(window_seconds=0).run_round()

    assert done is None
    assert provider.calls == []


def test_the_interval_comes_from_the_governor_when_not_configured(make_refresher, governor):
    governor.interval_seconds = 432.0

    assert make_refresher(interval_seconds=None).interval(120) == 432.0
    assert make_refresher(interval_seconds=2).interval(120) == 2


def test_the_last_round_is_reported_for_usage(make_refresher, log, clock):
    requested(log, clock, ["C1", "C2", "C3"])
    refresher = make_refresher()
    before = refresher.status()

    refresher.run_round()
    after = refresher.status()

    assert before == RefreshStatus(window_seconds=WINDOW, interval_seconds=60, symbols=0, last_round_at=None)
    assert after == RefreshStatus(window_seconds=WINDOW, interval_seconds=60, symbols=3, last_round_at=clock.now())


def test_the_daily_job_runs_once_a_day_whoever_asks(make_refresher, clock):
    runs = []
    first, second = make_refresher("a"), make_refresher("b")
    first.daily_job = second.daily_job = lambda: runs.append(clock.now())

    first.run_daily_job()
    second.run_daily_job()
    clock.advance(86400)
    second.run_daily_job()

    assert len(runs) == 2


def test_the_loop_survives_a_failing_database_and_stops_when_told(make_refresher, lease):
    lease.fail_with = StorageError("database down")
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()

    make_refresher().run(stop, max_wait_seconds=0.01)

    assert stop.is_set()


def test_a_round_asked_for_now_ignores_the_interval_but_not_a_live_lease(make_refresher, log, clock, lease):
    requested(log, clock, ["C1"])
    refresher = make_refresher()
    refresher.run_round()
    clock.advance(1)

    forced = refresher.run_round(due_now=True)
    lease.acquire("other", ttl_seconds=15, interval_seconds=0)
    blocked = refresher.run_round(due_now=True)

    assert forced is not None
    assert blocked is None


def test_a_refresher_asks_for_the_daily_job_at_most_every_few_minutes(make_refresher, clock, lease):
    refresher = make_refresher()
    refresher.daily_job = lambda: None
    refresher.run_daily_job()
    lease.daily.clear()  # as if a day had passed for the database

    soon = refresher.run_daily_job()
    clock.advance(300)
    later = refresher.run_daily_job()

    assert (soon, later) == (False, True)


@pytest.mark.parametrize("failure", [
    ProviderUnavailable("CoinMarketCap answered 500"),
    ProviderUnavailable("daily credits spent", retry_after=3600, upstream_code=1009),
    ProviderError("bad symbols", upstream_code=400),
], ids=["outage", "limit-verdict", "error-code"])
def test_a_batch_coinmarketcap_did_not_charge_gives_its_refresh_credit_back(
        make_refresher, log, clock, provider, governor, failure):
    requested(log, clock, SYMBOLS[:50])
    provider.fail_with = failure

    make_refresher().run_round()

    assert governor.refunded == [(Purpose.REFRESH, 1)]


@pytest.mark.parametrize("failure", [
    ProviderTimeout("CoinMarketCap did not answer in time"),
    ProviderError("unusable answer"),
], ids=["timeout", "unusable-answer"])
def test_a_batch_coinmarketcap_may_have_charged_keeps_its_refresh_credit(
        make_refresher, log, clock, provider, governor, failure):
    requested(log, clock, SYMBOLS[:50])
    provider.fail_with = failure

    make_refresher().run_round()

    assert governor.reserved == [(Purpose.REFRESH, 1)]
    assert governor.refunded == []


def test_a_long_daily_job_does_not_hold_up_the_rounds(make_refresher, log, clock, lease):
    requested(log, clock, ["C1"])
    release = threading.Event()
    refresher = make_refresher()
    refresher.daily_job = lambda: release.wait(10)  # a first prune of a large history
    stop = threading.Event()
    loop = threading.Thread(target=refresher.run, args=(stop,), kwargs={"max_wait_seconds": 0.01})
    loop.start()
    try:
        assert wait_until(lambda: lease.last_round() is not None)
        first = lease.last_round()
        clock.advance(61)

        assert wait_until(lambda: lease.last_round() != first)
    finally:
        release.set()
        stop.set()
        loop.join(5)


def test_a_stopped_loop_does_not_wait_for_a_daily_job_under_way(make_refresher):
    release = threading.Event()
    refresher = make_refresher()
    refresher.daily_job = lambda: release.wait(10)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()

    refresher.run(stop, max_wait_seconds=0.01)

    release.set()
    assert time.monotonic() - began < 2


def loop_for(refresher, seconds: float) -> None:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    refresher.run(stop, max_wait_seconds=5)


def test_with_refresh_ahead_off_the_loop_does_not_poll_the_database(make_refresher, lease):
    refresher = make_refresher(window_seconds=0)

    loop_for(refresher, 1.2)

    assert lease.asked <= 2  # the first look (and the daily claim), then a wait of 5 s


def test_a_refresher_waiting_for_another_ones_round_does_not_poll_the_database(
        make_refresher, lease, log, clock):
    requested(log, clock, ["C1"])
    make_refresher("first").run_round()
    clock.advance(61)  # the next round is due...
    lease.acquire("other", ttl_seconds=600, interval_seconds=0)  # ...and another is in it
    asked = lease.asked

    loop_for(make_refresher("waiting"), 1.2)

    assert lease.asked - asked <= 3  # one try (two looks), then a wait of 5 s


# -- riders, due quotes, the lease kept, a stop between batches ------------------------------------

def test_symbols_requested_within_the_day_ride_along_in_the_last_batch_for_free(
        make_refresher, log, clock, provider, governor):
    requested(log, clock, SYMBOLS[:50], seconds_ago=10)
    requested(log, clock, SYMBOLS[50:120], seconds_ago=WINDOW + 60)  # asked 16 minutes ago

    done = make_refresher().run_round()

    assert len(provider.calls) == 1 and len(provider.calls[0][1]) == 100
    assert set(provider.calls[0][1]) == set(SYMBOLS[:50]) | set(SYMBOLS[50:100])
    assert governor.reserved == [(Purpose.REFRESH, 1)]
    assert (done.symbols, done.refreshed) == (50, 50)


def test_a_round_refreshes_only_quotes_due_and_makes_no_call_when_none_is(
        make_refresher, log, clock, provider, repo):
    requested(log, clock, ["C1", "C2"])
    repo.add({"C1": provider.market["C1"]})  # fetched just now, by a request's packed call
    refresher = make_refresher(max_age_seconds=300)

    refresher.run_round(due_now=True)
    clock.advance(100)
    idle = refresher.run_round(due_now=True)

    assert provider.calls[0][1] == ("C2",)
    assert (idle.calls, idle.refreshed) == (0, 0) and len(provider.calls) == 1
    clock.advance(51)  # past half the max age: due again
    refresher.run_round(due_now=True)
    assert set(provider.calls[1][1]) == {"C1", "C2"}


class SlowProvider(FakeQuoteProvider):
    """A call that takes `seconds` of real time (the lease expires on real time)."""

    def __init__(self, market, seconds):
        super().__init__(market)
        self.seconds = seconds

    def fetch_by_symbols(self, symbols, currency, *, deadline=None):
        time.sleep(self.seconds)
        return super().fetch_by_symbols(symbols, currency, deadline=deadline)


def test_the_lease_is_kept_while_a_batch_takes_longer_than_the_lease(repo, cache, log, clock):
    from src.domain.clock import SystemClock
    from tests.fakes_refresh import InMemoryRefreshLease

    real = SystemClock()
    lease = InMemoryRefreshLease(clock=real)
    market = {s: coin_quote(s, i + 1, "1.5") for i, s in enumerate(SYMBOLS[:2])}
    log.record(dict.fromkeys(SYMBOLS[:2], real.now()))
    policy = RefreshPolicy(window_seconds=WINDOW, interval_seconds=60, call_seconds=0.3,
                           lease_margin_seconds=0.3)  # a 0.6 s lease; the call takes 1.5 s

    def make(holder):
        return Refresher(provider=SlowProvider(market, 1.5), repository=repo, cache=cache,
                         governor=FakeCreditGovernor(), request_log=log, lease=lease, clock=real,
                         policy=policy, holder=holder)

    first, second = make("first"), make("second")
    done = []
    running = threading.Thread(target=lambda: done.append(first.run_round()))
    running.start()
    time.sleep(1.0)  # past the lease's 0.6 s: without renewals the second would take it
    taken = second.run_round(due_now=True)
    running.join(5)

    assert taken is None
    assert done[0].calls == 1


def test_a_stop_ends_the_round_between_batches(make_refresher, log, clock, provider):
    requested(log, clock, SYMBOLS)  # 250 symbols: three batches
    stop = threading.Event()
    refresher = make_refresher(ride_along_seconds=0)
    original = provider.fetch_by_symbols

    def fetch_then_stop(*args, **kwargs):
        stop.set()  # SIGTERM arrives during the first batch
        return original(*args, **kwargs)

    provider.fetch_by_symbols = fetch_then_stop
    done = refresher.run_round(stop=stop)

    assert len(provider.calls) == 1
    assert (done.calls, done.stopped) == (1, "stopping")


def test_with_a_configured_interval_the_governor_still_learns_how_many_symbols_are_hot(
        make_refresher, log, clock, governor):
    # What refresh-ahead needs before conversions may spend depends on it.
    requested(log, clock, SYMBOLS[:42])
    refresher = make_refresher(interval_seconds=5)
    refresher.run_round()  # the first round: told during it, not only when the next is due

    assert governor.hot_symbols == 42
    assert refresher.seconds_until_due() <= 5
