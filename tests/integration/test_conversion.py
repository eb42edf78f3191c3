"""Conversion against real PostgreSQL and memcached and the fake CoinMarketCap."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import unquote

import pytest
from pymemcache.client.base import Client
from sqlalchemy import text




def memcached_values(servers: list[str]) -> list[bytes]:
    values = []
    for server in servers:
        host, _, port = server.rpartition(":")
        client = Client((host, int(port)))
        keys = _dump_keys(client)
        values += [v for v in client.get_many(keys).values()]
        client.close()
    return values


def _dump_keys(client: Client) -> list[str]:
    """Every key the server holds (`lru_crawler metadump all`), for test inspection."""
    client._connect()  # noqa: SLF001 - a raw protocol command pymemcache has no method for
    client.sock.sendall(b"lru_crawler metadump all\r\n")
    data = b""
    while not data.endswith(b"END\r\n"):
        data += client.sock.recv(65536)
    # Lines read `key=<url-encoded key> exp=... la=...`.
    return [unquote(line.split()[0][4:].decode()) for line in data.splitlines()
            if line.startswith(b"key=")]


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


def test_no_cache_value_and_no_row_holds_a_converted_figure(client, engine, memcached_servers):
    for _ in range(3):
        assert client.get("/api/v1/quotes?symbol=BTC,ETH&convert=EUR").status_code == 200

    with engine.connect() as conn:
        currencies = conn.execute(text("SELECT DISTINCT currency FROM quotes")).scalars().all()
    values = memcached_values(memcached_servers)
    assert currencies == ["USD"]
    assert len(values) == 2
    assert all(b'"EUR"' not in v and b'"currency":"USD"' in v for v in values)


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
