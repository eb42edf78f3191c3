"""The credit governor over real memcached and the fake CoinMarketCap's key info: one budget for
every process (each governor here stands for a gunicorn worker or a replica)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from pymemcache.client.base import Client

from src.adapters.budget.board import build_board
from src.adapters.budget.governor import SharedCreditGovernor
from src.adapters.coinmarketcap.key_info import CoinMarketCapKeyInfo, KeyInfo
from src.domain.clock import SystemClock
from src.domain.errors import BudgetSpent
from src.domain.model import Plan, Purpose
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.fakes import FixedClock, verdict
from tests.servers import free_port


def governor(servers, **options) -> SharedCreditGovernor:
    options.setdefault("daily_credits", 20)
    options.setdefault("calls_per_minute", 1000)
    options.setdefault("clock", SystemClock())
    return SharedCreditGovernor(board=build_board(servers), **options)


def spend(gov, purpose, times) -> int:
    allowed = 0
    for _ in range(times):
        try:
            gov.reserve(purpose, 1)
            allowed += 1
        except BudgetSpent:
            pass
    return allowed


def test_processes_sharing_memcached_spend_one_daily_budget(memcached_servers, flush_memcached):
    first, second = governor(memcached_servers), governor(memcached_servers)

    spent = [spend(first, Purpose.REQUEST, 6), spend(second, Purpose.REQUEST, 6),
             spend(first, Purpose.REQUEST, 6), spend(second, Purpose.REQUEST, 6)]

    assert sum(spent) == 20
    assert second.usage()["today"]["by_purpose"]["request"] == 20


def test_a_verdict_honoured_by_one_process_stops_the_others(memcached_servers, flush_memcached):
    first, second = governor(memcached_servers), governor(memcached_servers)

    first.honour(verdict(1008))

    with pytest.raises(BudgetSpent) as refused:
        second.reserve(Purpose.REQUEST, 1)
    assert 0 < refused.value.retry_after <= 60
    assert second.usage()["blocked"]["upstream_code"] == 1008


def test_the_plan_is_read_from_the_fake_key_info_once_for_every_process(
        memcached_servers, flush_memcached, cmc):
    cmc.market.set_plan(daily_credits=30, calls_per_minute=7)
    reader = CoinMarketCapKeyInfo(base_url=cmc.url, api_key=FAKE_CMC_KEY)
    processes = [governor(memcached_servers, daily_credits=None, calls_per_minute=None,
                          read_key_info=reader.read) for _ in range(3)]

    plans = {p.plan() for p in processes}

    assert plans == {Plan(30, 7, "key_info")}
    assert [c["path"] for c in cmc.market.calls] == ["/v1/key/info"]


def test_an_injected_1009_is_honoured_until_the_reset_the_fake_reports(
        memcached_servers, flush_memcached, cmc):
    cmc.market.inject_verdict(1009, 20)
    reader = CoinMarketCapKeyInfo(base_url=cmc.url, api_key=FAKE_CMC_KEY)
    first, second = (governor(memcached_servers, read_key_info=reader.read) for _ in range(2))

    first.honour(verdict(1009))

    with pytest.raises(BudgetSpent) as refused:
        second.reserve(Purpose.REQUEST, 1)
    assert 15 <= refused.value.retry_after <= 21


def test_with_its_counters_gone_a_process_makes_no_call_and_never_fails(flush_memcached):
    # Each process counting for itself would together spend beyond the plan.
    gone = [f"127.0.0.1:{free_port()}"]
    gov = governor(gone)

    allowed = spend(gov, Purpose.REQUEST, 25)

    assert allowed == 0
    assert gov.usage()["today"]["credits_used"] == 0


def test_junk_under_the_verdict_key_is_no_verdict(memcached_servers, flush_memcached):
    for server in memcached_servers:
        host, _, port = server.rpartition(":")
        client = Client((host, int(port)))
        client.set("coinquote:credits:v1:verdict:day", b"\x80\x04junk", noreply=False)
        client.close()
    gov = governor(memcached_servers)

    assert spend(gov, Purpose.REQUEST, 1) == 1
    assert gov.usage()["blocked"] is None


def _write_everywhere(servers, key: str, value: bytes) -> None:
    for server in servers:
        host, _, port = server.rpartition(":")
        client = Client((host, int(port)))
        client.set(key, value, noreply=False)
        client.close()


@pytest.mark.parametrize("kind", ["minute", "day"])
def test_junk_under_a_counter_key_is_overwritten_and_the_shared_budget_holds(
        memcached_servers, flush_memcached, kind):
    first, second = governor(memcached_servers), governor(memcached_servers)
    key = (first._minute_key(first.clock.now()) if kind == "minute"
           else first._day_key(first.clock.now(), Purpose.REQUEST))
    _write_everywhere(memcached_servers, key, b"junk")
    if kind == "minute":
        first.calls_per_minute, second.calls_per_minute = 20, 20
        first.daily_credits = second.daily_credits = 1000

    spent = [spend(first, Purpose.REQUEST, 15), spend(second, Purpose.REQUEST, 15)]

    # Counted per process, each would allow 20: 40 in all.
    assert sum(spent) == 20


def test_junk_under_a_counter_key_is_no_500_for_usage(memcached_servers, flush_memcached):
    gov = governor(memcached_servers)
    for kind in [*Purpose, "elsewhere"]:
        _write_everywhere(memcached_servers, gov._day_key(gov.clock.now(), kind), b"\xffjunk")
    _write_everywhere(memcached_servers, gov._minute_key(gov.clock.now()), b"-3")

    usage = gov.usage()
    gov.reserve(Purpose.REQUEST, 1)

    assert usage["today"]["credits_used"] == 0
    assert usage["minute"]["calls"] == 0
    # Still counting in memcached, where every other process sees it.
    assert governor(memcached_servers).usage()["today"]["credits_used"] == 1


def test_junk_under_the_verdict_key_leaves_the_budget_shared(memcached_servers, flush_memcached):
    _write_everywhere(memcached_servers, "coinquote:credits:v1:verdict:minute", b"\xff\xfe")
    first, second = governor(memcached_servers), governor(memcached_servers)

    spent = [spend(first, Purpose.REQUEST, 15), spend(second, Purpose.REQUEST, 15)]

    assert sum(spent) == 20


def test_a_counter_beyond_64_bits_is_junk_and_replaced(memcached_servers, flush_memcached):
    gov = governor(memcached_servers)
    _write_everywhere(memcached_servers, gov._day_key(gov.clock.now(), Purpose.REQUEST),
                      b"9" * 25)

    other = governor(memcached_servers)
    spent = [spend(gov, Purpose.REQUEST, 15), spend(other, Purpose.REQUEST, 15)]

    assert sum(spent) == 20


def test_racing_processes_and_threads_never_spend_beyond_the_day_or_the_minute(
        memcached_servers, flush_memcached):
    clock = FixedClock(datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC))
    processes = [governor(memcached_servers, clock=clock, daily_credits=40, calls_per_minute=30)
                 for _ in range(4)]
    purposes = [Purpose.REQUEST, Purpose.REFRESH, Purpose.CONVERT]

    def worker(n: int) -> list[Purpose]:
        gov, kept = processes[n % 4], []
        for i in range(12):
            try:
                gov.reserve(purposes[(n + i) % 3], 1)
                kept.append(purposes[(n + i) % 3])
            except BudgetSpent:
                pass
        return kept

    with ThreadPoolExecutor(16) as pool:
        kept = [p for got in pool.map(worker, range(16)) for p in got]
    clock.advance(60)
    with ThreadPoolExecutor(16) as pool:
        kept += [p for got in pool.map(worker, range(16)) for p in got]

    # 30 calls in the first minute, then the day's 40 credits; conversions at most half of them.
    assert 30 < len(kept) <= 40
    assert kept.count(Purpose.CONVERT) <= 20
    assert processes[0].usage()["today"]["credits_used"] == len(kept)


def test_an_injected_1010_is_honoured_until_the_monthly_reset_the_fake_reports(
        memcached_servers, flush_memcached, cmc):
    reader = CoinMarketCapKeyInfo(base_url=cmc.url, api_key=FAKE_CMC_KEY)
    first, second = (governor(memcached_servers, daily_credits=None, read_key_info=reader.read)
                     for _ in range(2))
    first.plan()  # key info read before the verdict: it said the next month's start
    cmc.market.inject_verdict(1010, 20)

    first.honour(verdict(1010))

    with pytest.raises(BudgetSpent) as refused:
        second.reserve(Purpose.REQUEST, 1)
    assert 15 <= refused.value.retry_after <= 21


@pytest.mark.parametrize("note", [
    b'{"read_at": 1e12, "daily": "lots", "minute": [], "monthly": null, "used": {},'
    b' "daily_reset": null, "monthly_reset": null}',
    b'[1, 2]',
])
def test_a_junk_key_info_note_is_no_plan_and_no_500(memcached_servers, flush_memcached, note):
    _write_everywhere(memcached_servers, "coinquote:credits:v1:key-info", note)
    gov = governor(memcached_servers, daily_credits=None, calls_per_minute=None,
                   read_key_info=lambda: (_ for _ in ()).throw(ConnectionError("down")))

    assert spend(gov, Purpose.REQUEST, 1) == 1
    assert gov.plan() == Plan(333, 30, "default")


def test_governors_reading_key_info_at_once_count_what_was_spent_elsewhere_once(
        memcached_servers, flush_memcached):
    # Eight processes start together: each knows no plan, so each reads key info itself.
    together = threading.Barrier(8)

    def read() -> KeyInfo:
        together.wait(5)  # every reader holds CoinMarketCap's answer before any counts it
        return KeyInfo(daily_credits=333, calls_per_minute=30, credits_used_today=100)

    governors = [governor(memcached_servers, daily_credits=None, calls_per_minute=None,
                          read_key_info=read) for _ in range(8)]
    threads = [threading.Thread(target=g.plan) for g in governors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert {g.usage()["today"]["spent_elsewhere"] for g in governors} == {100}
