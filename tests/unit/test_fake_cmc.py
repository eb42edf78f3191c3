"""The fake CoinMarketCap behaves like the real one (its API documentation), so tests built on it hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_cmc.app import create_fake_app
from tests.fake_cmc.market import TEST_KEY, Failure, Market, Plan

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


def test_each_call_notes_the_quotes_it_answered_and_failures_can_be_called_off(client):
    client.post("/__fake__/failures", json={"status": 500, "times": 1000})
    failed = get(client, "symbol=BTC")
    client.delete("/__fake__/failures")

    answered = get(client, "symbol=BTC,ETH,NOPE")

    calls = client.get("/__fake__/calls").get_json()["calls"]
    assert (failed.status_code, answered.status_code) == (500, 200)
    assert "answered" not in calls[0]  # a failure sent no quote
    assert calls[1]["answered"] == ["BTC", "ETH"] and calls[1]["currency"] == "USD"
    assert calls[1]["answered_at"] > 0


def test_synthetic_coins_exist_for_any_number(client):
    data = get(client, "symbol=SYN1,SYN4242").get_json()["data"]

    assert data["SYN4242"][0]["id"] == 5_004_242


# -- the plan (key info and the plan's limits, as documented) ----------------------------------------------------------


class TickingClock:
    """The fake's clock, moved by hand (epoch seconds)."""

    def __init__(self, now: float = 1_795_651_200.0) -> None:  # 2026-11-26T00:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return TickingClock()


@pytest.fixture
def limited(clock):
    return Market(clock=clock, plan=Plan(daily_credits=10, monthly_credits=50, calls_per_minute=3))


@pytest.fixture
def limited_client(limited):
    return create_fake_app(limited).test_client()


def key_info(client):
    return client.get("/v1/key/info", headers={"X-CMC_PRO_API_KEY": TEST_KEY})


def test_calls_beyond_the_minute_get_429_1008_until_the_next_minute_of_its_clock(limited_client, clock):
    clock.now += 50
    answers = [get(limited_client, "symbol=BTC") for _ in range(4)]
    clock.now += 10  # the next minute starts

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].get_json()["status"]["error_code"] == 1008
    assert get(limited_client, "symbol=BTC").status_code == 200


def test_quotes_are_charged_per_hundred_coins_and_errors_cost_nothing(limited_client, limited, clock):
    symbols = ",".join(f"SYN{n}" for n in range(1, 151))

    big = get(limited_client, f"symbol={symbols}")
    clock.now += 60
    bad = get(limited_client, "symbol=NOPE1")

    assert big.get_json()["status"]["credit_count"] == 2
    assert bad.status_code == 400
    assert limited.usage()["usage"]["current_day"]["credits_used"] == 2


def test_daily_credits_run_out_with_429_1009_and_nothing_charged(limited_client, limited, clock):
    limited.set_plan(daily_credits=2, calls_per_minute=None)

    answers = [get(limited_client, "symbol=BTC") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].get_json()["status"]["error_code"] == 1009
    assert limited.usage()["usage"]["current_day"] == {"credits_used": 2, "credits_left": 0}
    assert limited.usage()["refused"] == {"1009": 1}


def test_monthly_credits_run_out_with_429_1010_across_days(limited_client, limited, clock):
    limited.set_plan(daily_credits=None, monthly_credits=2, calls_per_minute=None)
    get(limited_client, "symbol=BTC")
    clock.now += 86_400

    second = get(limited_client, "symbol=BTC")
    third = get(limited_client, "symbol=BTC")

    assert second.status_code == 200
    assert (third.status_code, third.get_json()["status"]["error_code"]) == (429, 1010)


def test_key_info_is_free_but_counts_against_the_minute(limited_client, limited):
    info = [key_info(limited_client) for _ in range(3)]

    assert all(i.status_code == 200 for i in info)
    assert info[-1].get_json()["data"]["usage"]["current_minute"] == {"requests_made": 3, "requests_left": 0}
    assert info[-1].get_json()["data"]["usage"]["current_day"]["credits_used"] == 0
    assert get(limited_client, "symbol=BTC").get_json()["status"]["error_code"] == 1008


def test_key_info_reports_the_plan_and_what_it_charged(limited_client, clock):
    get(limited_client, "symbol=BTC")
    get(limited_client, "id=1&convert=EUR")

    data = key_info(limited_client).get_json()["data"]

    assert data["plan"]["credit_limit_daily"] == 10
    assert data["plan"]["credit_limit_monthly"] == 50
    assert data["plan"]["rate_limit_minute"] == 3
    assert data["plan"]["credit_limit_daily_reset_timestamp"] == "2026-11-27T00:00:00.000Z"
    assert data["plan"]["credit_limit_monthly_reset_timestamp"] == "2026-12-01T00:00:00.000Z"
    assert data["usage"]["current_day"] == {"credits_used": 2, "credits_left": 8}
    assert data["usage"]["current_month"] == {"credits_used": 2, "credits_left": 48}


def test_the_plan_changes_at_runtime_and_reset_restores_the_one_given_at_start(limited_client, limited):
    limited_client.post("/__fake__/plan", json={"daily_credits": 1})
    get(limited_client, "symbol=BTC")

    refused = get(limited_client, "symbol=BTC")
    limited_client.post("/__fake__/reset")

    assert refused.get_json()["status"]["error_code"] == 1009
    assert limited_client.get("/__fake__/usage").get_json()["plan"]["credit_limit_daily"] == 10
    assert limited_client.get("/__fake__/usage").get_json()["usage"]["current_day"]["credits_used"] == 0


def test_an_injected_1009_refuses_quotes_until_its_reset_which_key_info_reports(limited_client, clock):
    limited_client.post("/__fake__/verdict", json={"error_code": 1009, "seconds": 30})

    refused = get(limited_client, "symbol=BTC")
    info = key_info(limited_client).get_json()["data"]
    clock.now += 31

    assert (refused.status_code, refused.get_json()["status"]["error_code"]) == (429, 1009)
    assert info["plan"]["credit_limit_daily_reset_timestamp"] == "2026-11-26T00:00:30.000Z"
    assert info["usage"]["current_day"]["credits_left"] == 0
    assert get(limited_client, "symbol=BTC").status_code == 200


def test_an_injected_1010_refuses_quotes_until_its_reset_which_key_info_reports(limited_client, clock):
    limited_client.post("/__fake__/verdict", json={"error_code": 1010, "seconds": 30})

    refused = get(limited_client, "symbol=BTC")
    info = key_info(limited_client).get_json()["data"]

    assert (refused.status_code, refused.get_json()["status"]["error_code"]) == (429, 1010)
    assert info["plan"]["credit_limit_monthly_reset_timestamp"] == "2026-11-26T00:00:30.000Z"
    assert info["usage"]["current_month"]["credits_left"] == 0


def test_the_default_plan_is_unlimited(client):
    answers = [get(client, "symbol=BTC").status_code for _ in range(50)]

    assert set(answers) == {200}
    assert client.get("/__fake__/usage").get_json()["refused"] == {}
