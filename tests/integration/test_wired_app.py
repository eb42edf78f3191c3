"""The real app over HTTP-free WSGI calls, wired to PostgreSQL, memcached and the fake CMC."""

from __future__ import annotations

import logging

from sqlalchemy import text

from src.entrypoints.app import create_app
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY


def source(client, symbols="BTC"):
    response = client.get(f"/api/v1/quotes?symbol={symbols}")
    assert response.status_code == 200, response.get_json()
    return {s: coin["source"] for s, coin in response.get_json()["data"].items()}


def test_walks_the_rules_provider_cache_database_cache(client, cmc, flush_memcached, engine):
    assert source(client) == {"BTC": "provider"}
    assert source(client) == {"BTC": "cache"}
    assert len(cmc.quote_calls()) == 1

    flush_memcached()

    assert source(client) == {"BTC": "database"}
    assert source(client) == {"BTC": "cache"}
    assert len(cmc.quote_calls()) == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM quotes")).scalar() == 1


def test_the_answer_is_the_providers_price_exactly(client, cmc):
    cmc.market.set_prices({"BTC": "97000.123456789"})

    body = client.get("/api/v1/quotes?symbol=btc").get_json()

    assert body["data"]["BTC"]["quote"]["USD"]["price"] == 97000.123456789
    assert '"price":97000.123456789,' in client.get("/api/v1/quotes?symbol=BTC").get_data(as_text=True)


def test_mixed_request_fetches_only_the_missing_symbols_in_one_call(client, cmc):
    source(client, "BTC")

    assert source(client, "BTC,ETH,SOL") == {"BTC": "cache", "ETH": "provider", "SOL": "provider"}

    calls = cmc.quote_calls()
    assert [c["params"]["symbol"] for c in calls] == ["BTC", "ETH,SOL"]
    assert all(c["params"]["skip_invalid"] == "true" for c in calls)


def test_shared_symbol_serves_the_active_coin_with_the_best_rank(client):
    body = client.get("/api/v1/quotes?symbol=ETC").get_json()

    assert body["data"]["ETC"]["id"] == 1321
    assert body["data"]["ETC"]["name"] == "Ethereum Classic"


def test_unknown_symbols(client):
    assert client.get("/api/v1/quotes?symbol=BTC,NOPE").get_json()["unknown_symbols"] == ["NOPE"]
    assert client.get("/api/v1/quotes?symbol=NOPE").status_code == 404


def test_a_rejected_key_is_a_502_without_the_key(wired_settings, caplog):
    from dataclasses import replace

    caplog.set_level(logging.DEBUG)
    app = create_app(replace(wired_settings, cmc_api_key="wrong-key-3c8e1d"))

    response = app.test_client().get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 502
    assert "credentials" in response.get_json()["message"]
    assert "wrong-key-3c8e1d" not in response.get_data(as_text=True) + caplog.text
    assert FAKE_CMC_KEY not in caplog.text


def test_readyz_reports_both_components(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "cache": "ok"}
