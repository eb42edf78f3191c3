"""Concurrent requests across gunicorn workers share per-symbol fetches: one upstream call per
symbol, and a failing fetch's error instead of a call each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import FaultyStack, service_env, start_fake_cmc, start_gunicorn
from tests.servers import stop


@pytest.fixture(scope="module")
def four_workers(e2e_dir, e2e_database_url, memcached_servers):
    fake = start_fake_cmc(e2e_dir / "stampede-fake.log")
    env = {**service_env(fake.url, e2e_database_url, memcached_servers), "GUNICORN_WORKER_CLASS": "sync",
           "GUNICORN_THREADS": "1"}
    service = start_gunicorn(env, e2e_dir / "stampede-gunicorn.log", workers=4)
    yield FaultyStack(service, fake)
    stop(service.process)
    stop(fake.process)


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=30)


def test_fifty_concurrent_requests_cost_one_upstream_call(four_workers, http):
    four_workers.reset(http)
    http.post(four_workers.fake.url + "/__fake__/latency", json={"seconds": 0.5}).raise_for_status()
    url = four_workers.service.url + "/api/v1/quotes?symbol=SYN4242"

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(get, [url] * 50))

    assert [r.status_code for r in responses] == [200] * 50
    prices = {r.json()["data"]["SYN4242"]["quote"]["USD"]["price"] for r in responses}
    sources = [r.json()["data"]["SYN4242"]["source"] for r in responses]
    assert len(prices) == 1
    assert sources.count("provider") == 1
    assert len(four_workers.calls(http)) == 1
    served_by = {line.split("[")[1].split("]")[0] for line in four_workers.service.output().splitlines()
                 if "coinquote.access: GET /api/v1/quotes 200" in line}
    assert len(served_by) >= 2, "the requests did not spread over several worker processes"


def test_overlapping_symbol_sets_share_one_fetch_of_their_common_symbol(four_workers, http):
    four_workers.reset(http)
    http.post(four_workers.fake.url + "/__fake__/latency", json={"seconds": 0.5}).raise_for_status()
    base = four_workers.service.url + "/api/v1/quotes?symbol="
    urls = [base + ("SYN6161,SYN6262" if i % 2 else "SYN6161") for i in range(12)]

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(get, urls))

    assert [r.status_code for r in responses] == [200] * 12
    fetched = [c["params"]["symbol"].split(",") for c in four_workers.calls(http)]
    assert sum("SYN6161" in symbols for symbols in fetched) == 1, fetched
    assert sum("SYN6262" in symbols for symbols in fetched) == 1, fetched
    prices = {r.json()["data"]["SYN6161"]["quote"]["USD"]["price"] for r in responses}
    assert len(prices) == 1


def test_concurrent_requests_during_a_failing_fetch_make_at_most_two_upstream_calls(four_workers, http):
    four_workers.reset(http)
    # An outage that tells us to come back later: the holder's one call fails after a second,
    # and no retry fits in the deadline, so every upstream call here is one request's fetch.
    four_workers.script(http, status=503, error_code=503, retry_after="30", delay=1, times=100)
    url = four_workers.service.url + "/api/v1/quotes?symbol=SYN5151"

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(get, [url] * 20))

    assert [r.status_code for r in responses] == [503] * 20
    assert all(r.json()["code"] == 503 for r in responses)
    assert len(four_workers.calls(http)) <= 2
