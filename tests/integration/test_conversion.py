"""Conversion against real PostgreSQL and memcached and the fake CoinMarketCap."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from src.adapters.cache.keys import cache_key


def test_eur_price_is_the_usd_price_over_the_eur_rate(client, cmc):
    body = client.get("/api/v1/quotes?symbol=BTC,ETH&convert=eur").get_json()

    for symbol in ("BTC", "ETH"):
        usd = Decimal(str(body["data"][symbol]["quote"]["USD"]["price"]))
        eur = Decimal(str(body["data"][symbol]["quote"]["EUR"]["price"]))
        assert eur == pytest.approx(usd / cmc.market.fiat_usd["EUR"], rel=Decimal("1e-12"))


def test_btc_in_eth_is_the_ratio_of_their_usd_prices(client):
    body = client.get("/api/v1/quotes?symbol=BTC&convert=ETH").get_json()

    price = Decimal(str(body["data"]["BTC"]["quote"]["ETH"]["price"]))
    assert price == pytest.approx(Decimal("67250.12") / Decimal("3512.44"), rel=Decimal("1e-12"))


def test_no_cache_value_and_no_row_holds_a_converted_figure(client, engine, memcached_probe):
    assert client.get("/api/v1/quotes?symbol=BTC,ETH&convert=EUR").status_code == 200
    sets_after_first = memcached_probe.sets()  # base quotes, their claims, EUR remembered as valid
    for _ in range(2):
        assert client.get("/api/v1/quotes?symbol=BTC,ETH&convert=EUR").status_code == 200

    with engine.connect() as conn:
        currencies = conn.execute(text("SELECT DISTINCT currency FROM quotes")).scalars().all()
    assert currencies == ["USD"]
    for symbol in ("BTC", "ETH"):
        assert memcached_probe.get_everywhere(f"coinquote:{cache_key('EUR', symbol)}") == [None, None]
        stored = [v for v in memcached_probe.get_everywhere(f"coinquote:{cache_key('USD', symbol)}") if v]
        assert len(stored) == 1 and b'"currency":"USD"' in stored[0] and b"EUR" not in stored[0]
    assert memcached_probe.sets() == sets_after_first  # nothing written per conversion


def test_each_convert_request_calls_upstream_once_and_base_quotes_stay_cached(client, cmc):
    for _ in range(4):
        body = client.get("/api/v1/quotes?symbol=BTC,ETH,SOL&convert=GBP").get_json()

    calls = cmc.quote_calls()
    by_symbol = [c for c in calls if "symbol" in c["params"]]
    by_id = [c for c in calls if "id" in c["params"]]
    assert len(by_symbol) == 1 and len(by_id) == 4
    assert all(c["params"]["convert"] == "GBP" for c in by_id)
    assert {s: c["source"] for s, c in body["data"].items()} == {"BTC": "cache", "ETH": "cache", "SOL": "cache"}


def test_convert_to_the_base_currency_costs_no_call(client, cmc):
    client.get("/api/v1/quotes?symbol=BTC")

    body = client.get("/api/v1/quotes?symbol=BTC&convert=usd").get_json()

    assert list(body["data"]["BTC"]["quote"]) == ["USD"]
    assert len(cmc.quote_calls()) == 1


def test_unknown_currency_is_422_naming_it(client):
    response = client.get("/api/v1/quotes?symbol=BTC&convert=XYZ")

    assert response.status_code == 422
    assert "XYZ" in response.get_json()["message"]


def test_an_unknown_currency_is_remembered_so_repeating_it_costs_no_call(client, cmc):
    statuses = [client.get("/api/v1/quotes?symbol=BTC&convert=XYZ").status_code for _ in range(4)]

    by_id = [c for c in cmc.quote_calls() if "id" in c["params"]]
    assert statuses == [422] * 4
    assert [c["params"]["convert"] for c in by_id] == ["XYZ"]


def test_an_unknown_currency_is_422_even_when_no_symbol_exists(client, cmc):
    first = client.get("/api/v1/quotes?symbol=NOPE&convert=XYZ")
    again = client.get("/api/v1/quotes?symbol=NOPE&convert=XYZ")

    assert (first.status_code, again.status_code) == (422, 422)
    assert "XYZ" in again.get_json()["message"]
    assert len([c for c in cmc.quote_calls() if "id" in c["params"]]) == 1


def test_unknown_symbols_with_a_valid_currency_are_404_after_one_check_of_the_currency(client, cmc):
    statuses = [client.get("/api/v1/quotes?symbol=NOPE&convert=GBP").status_code for _ in range(3)]

    by_id = [c for c in cmc.quote_calls() if "id" in c["params"]]
    assert statuses == [404] * 3
    assert [c["params"]["convert"] for c in by_id] == ["GBP"]
