"""Resilience against the fake CoinMarketCap over HTTP, with real PostgreSQL and memcached."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from src.adapters.coinmarketcap import CircuitBreaker, CoinMarketCapProvider
from tests.conftest import make_client
from tests.fake_cmc.market import Failure


class TestCircuitBreaker:
    @pytest.fixture
    def client(self, wired_settings, cmc):
        provider = CoinMarketCapProvider(
            base_url=cmc.url, api_key=wired_settings.cmc_api_key, max_attempts=1,
            breaker=CircuitBreaker(failure_threshold=3, cooldown_seconds=1.5),
        )
        return make_client(wired_settings, provider=provider)

    def test_opens_after_the_threshold_then_closes_after_the_cool_down(self, client, cmc):
        cmc.market.failures.append(Failure(status=500, times=3))
        statuses = [client.get(f"/api/v1/quotes?symbol=SYN{i}").status_code for i in range(3)]
        assert statuses == [503, 503, 503] and len(cmc.quote_calls()) == 3

        refused = client.get("/api/v1/quotes?symbol=SYN10")

        assert refused.status_code == 503
        assert "not calling" in refused.get_json()["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        assert len(cmc.quote_calls()) == 3  # refused without an upstream call

        time.sleep(3.1)  # past the cool-down, and past SYN10's failure note (whole seconds in memcached)
        recovered = client.get("/api/v1/quotes?symbol=SYN10")

        assert recovered.status_code == 200
        assert len(cmc.quote_calls()) == 4


class TestStaleIfError:
    def test_an_old_stored_quote_is_served_marked_stale_when_the_provider_fails(self, wired_settings, cmc,
                                                                             engine, flush_memcached):
        client = make_client(replace(wired_settings, quote_max_age_seconds=60))
        assert client.get("/api/v1/quotes?symbol=BTC").get_json()["data"]["BTC"]["source"] == "provider"
        with engine.begin() as conn:  # age the stored quote past QUOTE_MAX_AGE_SECONDS
            conn.execute(text("UPDATE quotes SET fetched_at = fetched_at - interval '1 hour'"))
        flush_memcached()
        cmc.market.failures.append(Failure(status=500, times=10))

        response = client.get("/api/v1/quotes?symbol=BTC")

        btc = response.get_json()["data"]["BTC"]
        assert response.status_code == 200
        assert (btc["source"], btc["stale"]) == ("database", True)
        assert btc["quote"]["USD"]["price"] == 67250.12


def test_a_thousand_requests_for_unknown_symbols_cost_one_call_per_symbol(wired_settings, cmc):
    client = make_client(wired_settings)
    junk = [f"NOPE{i}" for i in range(10)]

    statuses = {client.get(f"/api/v1/quotes?symbol={junk[i % 10]}").status_code for i in range(1000)}

    assert statuses == {404}
    assert len(cmc.quote_calls()) <= len(junk)


def test_unknown_symbols_mixed_with_known_ones_are_not_asked_for_again(wired_settings, cmc):
    client = make_client(wired_settings)
    client.get("/api/v1/quotes?symbol=BTC,NOPE")

    for _ in range(20):
        body = client.get("/api/v1/quotes?symbol=BTC,NOPE").get_json()

    assert body["unknown_symbols"] == ["NOPE"]
    assert len(cmc.quote_calls()) == 1


JUNK = [
    "symbol=" + "A" * 21,
    "symbol=" + ",".join(f"S{i}" for i in range(101)),
    "symbol=" + ",".join(f"S{i}" for i in range(5000)),
    "symbol=BTC%0D%0Aset%20x%200%200%201%0D%0Ay",
    "symbol=BTC%0Aflush_all",
    "symbol=BTC%00",
    "symbol=BTC%09ETH",
    "symbol=%E2%80%8BBTC",  # zero-width space
    "symbol=%D0%92%D0%A2%D0%A1",  # Cyrillic look-alikes
    "symbol=%EF%BC%A2%EF%BC%B4%EF%BC%A3",  # full-width
    "symbol=BTC'%3B%20DROP%20TABLE%20quotes%3B--",
    "symbol=1%20OR%201%3D1",
    "symbol=BTC%25",
    "symbol=../../etc",
    "symbol=",
    "symbol=,",
    "",
    "symbol=BTC&convert=EU%0D%0AR",
    "symbol=BTC&convert=%E2%82%AC",
    "symbol=BTC&convert=" + "E" * 21,
    "symbol=BTC&pad=" + "x" * 5000,
]


def test_junk_input_is_422_and_reaches_nothing(wired_settings, cmc, engine, memcached_probe):
    client = make_client(wired_settings)
    sets_before = memcached_probe.sets()

    responses = [client.get("/api/v1/quotes?" + query) for query in JUNK]

    assert [r.status_code for r in responses] == [422] * len(JUNK)
    assert all(r.get_json()["message"] for r in responses)
    assert cmc.quote_calls() == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM quotes")).scalar() == 0
    assert memcached_probe.sets() == sets_before


def test_rate_limit_is_shared_through_memcached_across_app_instances(wired_settings):
    settings = replace(wired_settings, rate_limit="5/minute")
    one, other = make_client(settings), make_client(settings)

    statuses = [c.get("/api/v1/quotes?symbol=BTC").status_code for c in (one, other) * 3]

    assert statuses == [200, 200, 200, 200, 200, 429]


def test_max_age_makes_an_old_stored_quote_count_as_missing(wired_settings, cmc, engine, flush_memcached):
    client = make_client(replace(wired_settings, quote_max_age_seconds=60))
    client.get("/api/v1/quotes?symbol=ETH")
    with engine.begin() as conn:
        conn.execute(text("UPDATE quotes SET fetched_at = fetched_at - :age"), {"age": timedelta(minutes=5)})
    flush_memcached()

    assert client.get("/api/v1/quotes?symbol=ETH").get_json()["data"]["ETH"]["source"] == "provider"
    assert len(cmc.quote_calls()) == 2
