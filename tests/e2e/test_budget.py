"""Issue 11's acceptance for the credit budget and freshness, against the real processes: gunicorn
with several workers, memcached, PostgreSQL and the fake CoinMarketCap enforcing a plan."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from src.adapters.cache.keys import cache_key
from tests.e2e.conftest import (
    E2E_KEY,
    ROOT,
    Process,
    base_env,
    migrate,
    service_env,
    spawn,
    start_gunicorn,
    wait_for,
)
from tests.integration.conftest import MemcachedProbe
from tests.servers import free_port, stop


@dataclass
class BudgetStack:
    """A fake CoinMarketCap with a plan, and coinquote under gunicorn in front of it."""

    fake: Process
    api: Process
    http: requests.Session

    def get(self, query: str) -> requests.Response:
        return self.http.get(f"{self.api.url}/api/v1/quotes?{query}", timeout=30)

    def fake_usage(self) -> dict:
        return self.http.get(self.fake.url + "/__fake__/usage").json()

    def quote_calls(self) -> list[dict]:
        return [c for c in self.http.get(self.fake.url + "/__fake__/calls").json()["calls"]
                if c["path"].endswith("quotes/latest")]

    def usage(self) -> dict:
        return self.http.get(self.api.url + "/usage").json()


@pytest.fixture(scope="module")
def budget_database(e2e_database_url, memcached_servers) -> str:
    migrated = migrate(service_env("http://127.0.0.1:9", e2e_database_url, memcached_servers))
    assert migrated.returncode == 0, migrated.stderr
    return e2e_database_url


@pytest.fixture
def start_stack(e2e_dir, budget_database, memcached_servers, flush_memcached) -> Iterator:
    """Start a fake with `plan_flags`, gunicorn with `env` over it, and with `refresher` the
    refresher as its own process; all stopped afterwards."""
    started: list[Process] = []
    refreshers: list[subprocess.Popen] = []
    sessions: list[requests.Session] = []

    def start(plan_flags: tuple[str, ...] = (), workers: int = 3, refresher: bool = False,
              **env: str) -> BudgetStack:
        name = uuid.uuid4().hex[:6]
        port = free_port()
        fake = spawn([sys.executable, "-m", "tests.fake_cmc", "--port", str(port), "--api-key", E2E_KEY,
                      *plan_flags], base_env(), port, e2e_dir / f"budget-fake-{name}.log")
        started.append(fake)
        api_env = {**service_env(fake.url, budget_database, memcached_servers),
                   "REFRESH_WINDOW_SECONDS": "0", **env}
        api = start_gunicorn(api_env, e2e_dir / f"budget-gunicorn-{name}.log", workers=workers)
        started.append(api)
        if refresher:
            log = open(e2e_dir / f"budget-refresher-{name}.log", "ab")
            refreshers.append(subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "refresh"], cwd=ROOT, env=api_env,
                stdout=log, stderr=subprocess.STDOUT))
        session = requests.Session()
        sessions.append(session)
        return BudgetStack(fake, api, session)

    yield start
    for session in sessions:
        session.close()
    for process in refreshers:
        stop(process)
    for proc in reversed(started):
        stop(proc.process)


def fresh_symbols(count: int) -> list[str]:
    """Synthetic coins nobody has stored or cached (the fake knows SYN<n> for any n)."""
    base = int(uuid.uuid4().int % 900_000) + 1000
    return [f"SYN{base + i}" for i in range(count)]


def wait_for_a_fresh_minute(latest_second: int = 40) -> None:
    """Start a burst early in a calendar minute, so it does not straddle two minutes' limits."""
    second = datetime.now(UTC).second
    if second > latest_second:
        time.sleep(60 - second + 0.5)


# -- 1. freshness -------------------------------------------------------------------------------


def test_after_the_upstream_price_changes_and_the_max_age_passes_the_new_price_is_served(start_stack):
    stack = start_stack(QUOTE_MAX_AGE_SECONDS="5")
    first = stack.get("symbol=BTC")
    changed_at = time.monotonic()
    stack.http.post(stack.fake.url + "/__fake__/prices", json={"BTC": "70123.45"}).raise_for_status()

    def new_price_served() -> requests.Response | None:
        answer = stack.get("symbol=BTC")
        served = answer.json()["data"]["BTC"]["quote"]["USD"]["price"]
        return answer if served == 70123.45 else None

    later = wait_for(new_price_served, 30, every=0.5)

    assert first.status_code == 200 and first.json()["data"]["BTC"]["quote"]["USD"]["price"] == 67250.12
    assert later, "the new price was never served"
    assert time.monotonic() - changed_at >= 4  # not before the 5 s max age had (nearly) passed
    assert later.status_code == 200
    assert later.json()["data"]["BTC"].get("stale") is not True


def test_with_the_defaults_usage_reports_a_max_age_of_300(start_stack):
    stack = start_stack()

    usage = stack.usage()

    assert usage["freshness"]["max_age_seconds"] == 300
    assert usage["plan"]["source"] == "key_info"


def test_metrics_carry_the_usage_figures_across_workers(start_stack):
    stack = start_stack()
    for symbol in fresh_symbols(3):
        assert stack.get(f"symbol={symbol}").status_code == 200

    text = stack.http.get(stack.api.url + "/metrics").text
    usage = stack.usage()

    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("coinquote_"))
    assert usage["today"]["by_purpose"]["request"] == 3
    assert float(samples['coinquote_credits_used_today{purpose="request"}']) == 3
    assert float(samples["coinquote_credits_left_today"]) == usage["today"]["credits_left"]
    assert float(samples['coinquote_credit_plan{limit="daily_credits"}']) == usage["plan"]["daily_credits"]
    assert float(samples["coinquote_quote_max_age_seconds"]) == 300


# -- 3. the daily budget --------------------------------------------------------------------------


def test_a_day_of_30_credits_is_never_overspent_and_usage_agrees_with_the_fake(start_stack):
    stack = start_stack(("--daily-credits", "30"), refresher=True, QUOTE_MAX_AGE_SECONDS="2",
                        REFRESH_WINDOW_SECONDS="900")
    known = fresh_symbols(4)
    assert stack.get("symbol=" + ",".join(known)).status_code == 200  # 1 credit
    new = iter(fresh_symbols(200))

    answers: dict[str, list[requests.Response]] = {"new": [], "known": [], "convert": []}
    for i in range(200):
        kind = ("new", "known", "known", "convert")[i % 4]
        symbol = next(new) if kind == "new" else known[i % len(known)]
        answers[kind].append(stack.get(f"symbol={symbol}" + ("&convert=EUR" if kind == "convert" else "")))
        if i % 50 == 49:
            time.sleep(2.1)  # let stored quotes age past QUOTE_MAX_AGE_SECONDS

    fake = stack.fake_usage()
    assert fake["refused"] == {}  # CoinMarketCap never had to answer 1008/1009/1010
    assert fake["usage"]["current_day"]["credits_used"] <= 30
    converted = [r.status_code for r in answers["convert"]]
    # At most CONVERT_CREDIT_SHARE 0.5 of 30; how many depends on when the refresher first says
    # how many symbols are hot (a 2 s bound on 30 credits: refresh-ahead's need leaves none).
    assert converted.count(200) <= 15
    assert converted[-1] == 503
    refused = [r for r in answers["convert"] + answers["new"] if r.status_code == 503]
    assert refused and all(int(r.headers["Retry-After"]) > 0 for r in refused)
    assert all("credit budget is spent" in r.json()["message"] for r in refused)
    assert [r.status_code for r in answers["known"]] == [200] * 100
    assert any(r.json()["data"][s].get("stale") for r in answers["known"] for s in r.json()["data"])
    assert {r.status_code for r in answers["new"]} <= {200, 503}
    assert stack.usage()["today"]["credits_used"] == fake["usage"]["current_day"]["credits_used"]


# -- 4. the minute's calls ------------------------------------------------------------------------


def test_at_5_calls_a_minute_20_new_symbols_cause_at_most_5_calls_and_503s_not_upstream_429s(start_stack):
    stack = start_stack(("--calls-per-minute", "5"))
    wait_for_a_fresh_minute()

    answers = [stack.get(f"symbol={symbol}") for symbol in fresh_symbols(20)]

    fake = stack.fake_usage()
    assert fake["refused"] == {}
    assert fake["usage"]["current_minute"]["requests_made"] <= 5  # key info counts too
    assert len(stack.quote_calls()) <= 5
    refused = [a for a in answers if a.status_code != 200]
    assert len(refused) >= 15
    assert all(a.status_code == 503 and 0 < int(a.headers["Retry-After"]) <= 60 for a in refused)
    assert all("credit budget is spent" in a.json()["message"] for a in refused)


# -- 5. CoinMarketCap's own verdict -----------------------------------------------------------------


def test_an_injected_1009_stops_every_process_until_the_reset_the_fake_reports(start_stack):
    verdict = 20  # seconds: room for the checks below on a loaded machine, each with a deadline
    stack = start_stack(refresher=True, QUOTE_MAX_AGE_SECONDS="1", REFRESH_WINDOW_SECONDS="900",
                        REFRESH_INTERVAL_SECONDS="2")
    stored = fresh_symbols(3)
    assert stack.get("symbol=" + ",".join(stored)).status_code == 200
    time.sleep(1.5)  # the stored quotes age past QUOTE_MAX_AGE_SECONDS (a floor, not an edge)
    stack.http.post(stack.fake.url + "/__fake__/verdict",
                    json={"error_code": 1009, "seconds": verdict})
    verdict_ends = time.monotonic() + verdict  # the fake's reset is a little before this
    stack.get(f"symbol={stored[0]}")  # a request or the refresher's next round meets the 1009
    assert wait_for(lambda: stack.fake_usage()["refused"].get("1009"), 10), "nobody met the 1009"
    settled = wait_for(lambda: no_new_calls_for(stack, 1.0), 10)  # calls in flight then are done
    assert settled, "calls kept coming after the 1009"

    calls_before = len(stack.quote_calls())
    during = [stack.get(f"symbol={stored[i % 3]}") for i in range(30)]
    new_symbol = stack.get(f"symbol={fresh_symbols(1)[0]}")
    time.sleep(max(0.0, min(3.0, verdict_ends - 2 - time.monotonic())))  # rounds come and go
    calls_after = len(stack.quote_calls())
    observed_until = time.monotonic()
    refused_by_fake = stack.fake_usage()["refused"]

    def fresh_again() -> requests.Response | None:
        answer = stack.get(f"symbol={stored[0]}")
        return answer if answer.json()["data"][stored[0]].get("stale") is not True else None

    after = wait_for(fresh_again, verdict_ends + 30 - time.monotonic(), every=0.5)
    fresh_at = time.monotonic()

    assert observed_until < verdict_ends, "the checks outlived the verdict: raise `verdict`"
    assert calls_after == calls_before  # no process called while the verdict was in force
    assert 1 <= refused_by_fake.get("1009", 0) <= 2  # what learnt it (a request, the refresher)
    assert [a.status_code for a in during] == [200] * 30
    assert all(next(iter(a.json()["data"].values()))["stale"] is True for a in during)
    assert new_symbol.status_code == 503 and 0 < int(new_symbol.headers["Retry-After"]) <= verdict
    assert after, "the quote never came back fresh after the reset"
    assert after.status_code == 200
    assert fresh_at >= verdict_ends - 2  # not before the reset the fake reported


def no_new_calls_for(stack: BudgetStack, seconds: float) -> bool:
    """Whether the fake saw no quotes call during the next `seconds`."""
    before = len(stack.quote_calls())
    time.sleep(seconds)
    return len(stack.quote_calls()) == before


# -- 6. conversions share a call, and stay live ---------------------------------------------------------


def test_20_identical_conversions_at_once_make_at_most_2_calls_and_nothing_is_kept(
        start_stack, budget_database, memcached_servers):
    stack = start_stack(workers=2, GUNICORN_THREADS="32")  # room for all 20 in either worker
    wait_for_a_fresh_minute(50)  # the governor's counter of a new minute is a memcached write
    assert stack.get("symbol=BTC&convert=EUR").status_code == 200  # BTC cached, EUR known
    stack.http.delete(stack.fake.url + "/__fake__/calls")
    stack.http.post(stack.fake.url + "/__fake__/latency", json={"seconds": 1.0})
    probe = MemcachedProbe(memcached_servers)
    sets_before = probe.sets()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: requests.get(
            f"{stack.api.url}/api/v1/quotes?symbol=BTC&convert=EUR", timeout=30), range(20)))

    calls = stack.quote_calls()
    assert [a.status_code for a in answers] == [200] * 20
    exact = Decimal("67250.12") * (Decimal(1) / Decimal("1.08"))  # as the fake computes it
    prices = {json.loads(a.text, parse_float=Decimal)["data"]["BTC"]["quote"]["EUR"]["price"] for a in answers}
    assert prices == {exact}
    assert 1 <= len(calls) <= 2 and all(c["params"].get("convert") == "EUR" for c in calls)
    assert probe.get_everywhere(f"coinquote:{cache_key('EUR', 'BTC')}") == [None] * len(memcached_servers)
    assert probe.sets() == sets_before
    probe.close()
    url = make_url(budget_database)
    with psycopg2.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                          dbname=url.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM quotes WHERE currency <> 'USD'")
        assert cur.fetchone()[0] == 0


# -- issue 16: every credit buys a hundred coins ------------------------------------------------------


def test_usage_equals_what_coinmarketcap_charged_for_unknown_known_and_namesake_symbols(start_stack):
    stack = start_stack(("--daily-credits", "10"), CMC_DAILY_CREDITS="10")
    unknown = [stack.get(f"symbol=NOPE{n}X") for n in range(10)]  # CoinMarketCap's uncharged 400
    known = stack.get("symbol=" + ",".join(fresh_symbols(2)))
    # 99 symbols and HOT, whose 3 coins make 102: CoinMarketCap charges 2 credits.
    namesakes = stack.get("symbol=" + ",".join([*fresh_symbols(99), "HOT"]))

    charged = stack.fake_usage()["usage"]["current_day"]["credits_used"]
    assert [r.status_code for r in unknown] == [404] * 10
    assert known.status_code == 200 and namesakes.status_code == 200
    assert charged == 3
    assert stack.usage()["today"]["credits_used"] == charged
    assert stack.usage()["today"]["by_purpose"]["request"] == 3


def test_forty_symbols_past_the_max_age_are_refreshed_by_one_call_for_one_of_them(start_stack):
    stack = start_stack(QUOTE_MAX_AGE_SECONDS="6", REFRESH_WINDOW_SECONDS="900")
    symbols = fresh_symbols(40)
    for pair in zip(symbols[::2], symbols[1::2]):
        assert stack.get("symbol=" + ",".join(pair)).status_code == 200
    time.sleep(7)  # past the max age, and past every worker's memo of the hot set (5 s)
    stack.http.delete(stack.fake.url + "/__fake__/calls")

    one = stack.get(f"symbol={symbols[0]}")
    calls = stack.quote_calls()
    rest = [stack.get("symbol=" + ",".join(symbols[i:i + 13])) for i in range(1, 40, 13)]

    assert one.status_code == 200 and one.json()["data"][symbols[0]]["source"] == "provider"
    assert len(calls) == 1
    carried = calls[0]["params"]["symbol"].split(",")
    assert carried[0] == symbols[0] and set(symbols) <= set(carried)
    assert len(stack.quote_calls()) == 1  # the rest made no call
    coins = [coin for r in rest for coin in r.json()["data"].values()]
    assert len(coins) == 39 and {c["source"] for c in coins} == {"cache"}
    assert not any(c.get("stale") for c in coins)


def test_on_basic_from_key_info_rounds_hold_the_max_age_and_a_conversion_is_answered(start_stack):
    stack = start_stack(("--daily-credits", "333", "--calls-per-minute", "30"),
                        REFRESH_WINDOW_SECONDS="900")

    converted = stack.get("symbol=BTC&convert=EUR")
    usage = stack.usage()

    assert usage["plan"] == {"daily_credits": 333, "calls_per_minute": 30, "source": "key_info"}
    assert usage["refresh"]["interval_seconds"] <= usage["freshness"]["max_age_seconds"] == 300
    assert usage["freshness"]["holds_max_age"] is True
    assert converted.status_code == 200 and "EUR" in converted.json()["data"]["BTC"]["quote"]


def test_four_workers_without_memcached_share_one_budget(start_stack, e2e_dir):
    database = f"sqlite:///{e2e_dir / f'budget-{uuid.uuid4().hex[:6]}.db'}"
    env = {"MEMCACHED_SERVERS": "", "DATABASE_URL": database}
    migrated = migrate({**service_env("http://127.0.0.1:9", database, []), **env})
    assert migrated.returncode == 0, migrated.stderr
    stack = start_stack(("--daily-credits", "10"), workers=4, **env)
    for symbol in fresh_symbols(4):
        assert stack.get(f"symbol={symbol}").status_code == 200

    used = {stack.usage()["today"]["credits_used"] for _ in range(16)}
    with ThreadPoolExecutor(16) as pool:  # racing workers, for more than the plan has left
        raced = list(pool.map(lambda s: stack.get(f"symbol={s}"), fresh_symbols(24)))
    charged = stack.fake_usage()

    assert used == {4}
    assert charged["refused"] == {}
    assert charged["usage"]["current_day"]["credits_used"] <= 10
    assert {r.status_code for r in raced} == {200, 503}
    assert {stack.usage()["today"]["credits_used"] for _ in range(16)} == \
        {charged["usage"]["current_day"]["credits_used"]}
