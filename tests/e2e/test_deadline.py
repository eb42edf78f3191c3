"""One deadline for all of a request's upstream work, seen through gunicorn and the fake CoinMarketCap."""

from __future__ import annotations

import time

import pytest

BUDGET_SECONDS = 8.0  # QuoteService's default upstream budget
SLACK = 1.5


@pytest.fixture
def stack(faulty, http):
    faulty.reset(http)
    yield faulty
    faulty.reset(http)


def test_a_slow_fetch_leaves_the_conversion_only_what_is_left_of_one_deadline(stack, http):
    # A first request warms the worker up (connections), so the timing below is the deadline's.
    assert http.get(stack.service.url + "/api/v1/quotes?symbol=BTC", timeout=30).status_code == 200
    # Each answer takes 4.5 s (within one attempt's read timeout): the base quotes fit, and
    # the conversion gets only the 3.5 s that remain of the request's deadline.
    http.post(stack.fake.url + "/__fake__/latency", json={"seconds": 4.5}).raise_for_status()
    calls_before = len(stack.calls(http))

    started = time.monotonic()
    response = http.get(stack.service.url + "/api/v1/quotes?symbol=SYN8181&convert=EUR", timeout=30)
    elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert response.json()["code"] == 504
    assert elapsed <= BUDGET_SECONDS + SLACK
    made = [c["params"] for c in stack.calls(http)[calls_before:]]
    assert [p.get("symbol") or p.get("convert") for p in made] == ["SYN8181", "EUR"]
