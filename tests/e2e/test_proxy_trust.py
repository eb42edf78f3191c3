"""Under real gunicorn, X-Forwarded-* count only from TRUSTED_PROXIES (rate limit, path prefix)."""

from __future__ import annotations

import http.client
import itertools
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import E2E_KEY, Process, base_env, start_gunicorn
from tests.servers import stop

PROXY = "127.0.0.2"  # the trusted proxy's address; the test's own 127.0.0.1 is a direct client
JUNK = "/api/v1/quotes?symbol=%21"  # a 422 that never reaches a database or CoinMarketCap
fresh_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def limited(e2e_dir, fake_cmc_process) -> Iterator[Process]:
    env = base_env(CMC_API_KEY=E2E_KEY, CMC_BASE_URL=fake_cmc_process.url,
                   DATABASE_URL=f"sqlite:///{e2e_dir / 'proxy-trust.db'}",
                   RATE_LIMIT="3/minute", TRUSTED_PROXIES=PROXY)
    proc = start_gunicorn(env, e2e_dir / "proxy-trust.log", workers=1)
    yield proc
    stop(proc.process)


def get(service: Process, path: str, source: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET from the given local source address (127.0.0.0/8 is all loopback on Linux)."""
    url = urlsplit(service.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_direct_client_rotating_x_forwarded_for_is_limited_after_three_requests(limited):
    statuses = [get(limited, JUNK, "127.0.0.1", {"X-Forwarded-For": next(fresh_addresses)})[0]
                for _ in range(5)]

    assert statuses == [422, 422, 422, 429, 429]


def test_through_a_trusted_proxy_each_forwarded_client_has_its_own_limit(limited):
    client = next(fresh_addresses)

    own = [get(limited, JUNK, PROXY, {"X-Forwarded-For": client})[0] for _ in range(4)]
    another = get(limited, JUNK, PROXY, {"X-Forwarded-For": next(fresh_addresses)})[0]

    assert own == [422, 422, 422, 429]
    assert another == 422


@pytest.mark.parametrize("source, prefix_followed", [("127.0.0.1", False), (PROXY, True)])
def test_x_forwarded_prefix_moves_the_docs_only_through_a_trusted_proxy(limited, source, prefix_followed):
    status, page = get(limited, "/swagger-ui", source, {"X-Forwarded-Prefix": "/evil"})

    assert status == 200
    assert ("/evil/openapi.json" in page) is prefix_followed
    assert "/openapi.json" in page
