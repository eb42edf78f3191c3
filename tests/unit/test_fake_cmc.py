"""The fake CoinMarketCap behaves like the real one (spec/cmc-api.md), so tests built on it hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_cmc.app import create_fake_app
from tests.fake_cmc.market import TEST_KEY, Failure, Market

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cmc"
QUOTES = "/v2/cryptocurrency/quotes/latest"


@pytest.fixture
def market():
    return Market()


@pytest.fixture
def client(market):
    return create_fake_app(market).test_client()


def get(client, query, key=TEST_KEY):
    headers = {"X-CMC_PRO_API_KEY": key} if key else {}
    return client.get(f"{QUOTES}?{query}", headers=headers)


def test_symbol_answers_have_the_documented_v2_shape(client):
    real = json.loads((FIXTURES / "quotes_latest_v2_BTC_ETH.json").read_text())

    fake = get(client, "symbol=BTC,ETH&convert=USD").get_json()

    assert set(fake["status"]) == set(real["status"])
    assert isinstance(fake["data"]["BTC"], list)
    assert set(fake["data"]["BTC"][0]) == set(real["data"]["BTC"][0])
    assert set(fake["data"]["BTC"][0]["quote"]["USD"]) == set(real["data"]["BTC"][0]["quote"]["USD"])
    assert fake["status"]["error_code"] == 0 and fake["status"]["credit_count"] == 1


def test_shared_symbol_lists_the_dead_coin_first(client):
    etc = get(client, "symbol=ETC").get_json()["data"]["ETC"]

    assert [(c["id"], c["is_active"]) for c in etc] == [(646, 0), (1321, 1)]


def test_id_answers_are_objects_keyed_by_id_in_the_convert_currency(client, market):
    data = get(client, "id=1027&convert=EUR").get_json()["data"]

    assert data["1027"]["quote"]["EUR"]["price"] == pytest.approx(3512.44 / 1.08)


@pytest.mark.parametrize(
    "key, code, message",
    [(None, 1002, "API key missing."), ("wrong", 1001, "This API Key is invalid.")],
)
def test_bad_keys_get_401(client, key, code, message):
    response = get(client, "symbol=BTC", key=key)

    assert response.status_code == 401
    assert response.get_json()["status"]["error_code"] == code
    assert response.get_json()["status"]["error_message"] == message


def test_query_string_key_is_accepted_like_the_real_api(client):
    assert client.get(f"{QUOTES}?symbol=BTC&CMC_PRO_API_KEY={TEST_KEY}").status_code == 200


@pytest.mark.parametrize(
    "query, message",
    [
        ("symbol=BTC&convert=XYZ", 'Invalid value for "convert": "XYZ"'),
        ("symbol=BTC&convert=USD,EUR", "Your plan is limited to 1 convert options"),
        ("symbol=BTC&foo=1", '"foo" is not allowed'),
        ("symbol=BTC&id=1", "conflict"),
        ("symbol=XYZ", 'Invalid value for "symbol": "XYZ"'),
        ("symbol=XYZ,QQQ", 'Invalid values for "symbol": "XYZ,QQQ"'),
        ("symbol=BTC,XYZ&skip_invalid=false", 'Invalid value for "symbol": "XYZ"'),
    ],
)
def test_bad_requests_get_400_with_cmc_messages(client, query, message):
    response = get(client, query)

    assert response.status_code == 400
    assert message in response.get_json()["status"]["error_message"]


def test_skip_invalid_drops_unknown_symbols(client):
    assert set(get(client, "symbol=BTC,XYZ&skip_invalid=true").get_json()["data"]) == {"BTC"}


def test_calls_are_counted_and_prices_can_change(client, market):
    client.post("/__fake__/prices", json={"BTC": "70000.5"})

    price = get(client, "symbol=BTC").get_json()["data"]["BTC"][0]["quote"]["USD"]["price"]

    assert price == 70000.5
    assert len(client.get("/__fake__/calls").get_json()["calls"]) == 1


def test_scripted_failures_answer_then_clear(client, market):
    market.failures.append(Failure(status=429, error_code=1008, message="rate", retry_after="7", times=1))

    first = get(client, "symbol=BTC")

    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert get(client, "symbol=BTC").status_code == 200


def test_synthetic_coins_exist_for_any_number(client):
    data = get(client, "symbol=SYN1,SYN4242").get_json()["data"]

    assert data["SYN4242"][0]["id"] == 5_004_242
