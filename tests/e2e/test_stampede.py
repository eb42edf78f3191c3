"""Many concurrent requests missing the same symbol, across gunicorn workers, cost one upstream call."""

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
