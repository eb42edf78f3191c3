"""The wired app on a credit budget: real PostgreSQL and memcached, the fake CoinMarketCap
enforcing a plan it reports through /v1/key/info (nothing configured)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from src.entrypoints.app import create_app
from tests.conftest import NoServerErrorClient


@pytest.fixture
def budget_client(wired_settings):
    def make(**changes):
        # Refresh-ahead off: on these tiny plans its need would come first (test_spending).
        changes.setdefault("refresh_window_seconds", 0)
        app = create_app(replace(wired_settings, **changes))
        app.test_client_class = NoServerErrorClient
        return app.test_client()

    return make


def test_conversions_stop_at_their_share_with_503_retry_after_and_the_budget_message(budget_client, cmc):
    cmc.market.set_plan(daily_credits=10)
    client = budget_client()

    answers = [client.get("/api/v1/quotes?symbol=BTC&convert=EUR") for _ in range(8)]

    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 5 + [503] * 3  # 50 % of 10 credits
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert "credit budget is spent" in answers[-1].get_json()["message"]
    assert cmc.market.usage()["refused"] == {}


def test_once_the_budget_is_spent_an_old_stored_quote_is_served_stale(budget_client, cmc):
    cmc.market.set_plan(daily_credits=2)
    client = budget_client(quote_max_age_seconds=1, cache_ttl_seconds=60)
    assert client.get("/api/v1/quotes?symbol=ETH").status_code == 200
    assert client.get("/api/v1/quotes?symbol=SOL").status_code == 200
    time.sleep(1.2)

    again = client.get("/api/v1/quotes?symbol=ETH")
    new = client.get("/api/v1/quotes?symbol=XRP")

    assert again.status_code == 200 and again.get_json()["data"]["ETH"]["stale"] is True
    assert new.status_code == 503 and "credit budget is spent" in new.get_json()["message"]
    assert cmc.market.usage()["refused"] == {}


def test_usage_counts_the_credits_the_fake_charged(budget_client, cmc):
    cmc.market.set_plan(daily_credits=50)
    client = budget_client()
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    client.get("/api/v1/quotes?symbol=SOL&convert=EUR")

    usage = client.get("/usage").get_json()

    assert usage["plan"] == {"daily_credits": 50, "calls_per_minute": 10_000, "source": "key_info"}
    assert usage["today"]["by_purpose"] == {"request": 2, "refresh": 0, "convert": 1}
    assert usage["today"]["credits_used"] == cmc.market.usage()["usage"]["current_day"]["credits_used"]
