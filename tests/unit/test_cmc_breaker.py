"""The circuit breaker alone and inside the provider: it opens, closes, and never sticks open."""

from __future__ import annotations

import pytest
import requests

from src.adapters.coinmarketcap import (
    CircuitBreaker,
    CircuitOpen,
    CoinMarketCapProvider,
)
from src.domain.errors import ProviderError, ProviderUnavailable
from tests.unit.cmc_support import BASE, KEY, URL, FakeClock, body, status


@pytest.fixture
def now():
    return [1000.0]


@pytest.fixture
def breaker(now):
    return CircuitBreaker(failure_threshold=3, cooldown_seconds=30, clock=lambda: now[0])


@pytest.fixture
def guarded(breaker):
    clock = FakeClock()
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock,
                                 max_attempts=1, breaker=breaker)


def fail_times(provider, n):
    for _ in range(n):
        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")


def open_then_cool_down(breaker, now):
    for _ in range(3):
        with pytest.raises(ProviderUnavailable), breaker.guard():
            raise ProviderUnavailable("down")
    now[0] += 31


class TestStates:
    def test_opens_after_the_threshold_and_refuses_without_calling(self, guarded, requests_mock):
        requests_mock.get(URL, status_code=500, json=status(500))
        fail_times(guarded, 3)

        with pytest.raises(CircuitOpen) as raised:
            guarded.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert raised.value.retry_after == pytest.approx(30)

    def test_a_trial_after_the_cool_down_closes_it_when_upstream_answers(self, guarded, requests_mock, now):
        requests_mock.get(URL, status_code=500, json=status(500))
        fail_times(guarded, 3)
        now[0] += 31
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")
        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")
        assert requests_mock.call_count == 5

    def test_a_failed_trial_opens_it_again(self, guarded, requests_mock, now):
        requests_mock.get(URL, exc=requests.ConnectionError)
        fail_times(guarded, 3)
        now[0] += 31

        fail_times(guarded, 1)

        with pytest.raises(CircuitOpen):
            guarded.latest_by_symbols(["BTC"], "USD")
        assert requests_mock.call_count == 4

    def test_rejections_do_not_open_it(self, guarded, requests_mock):
        requests_mock.get(URL, status_code=401, json=body("error_401.json"))

        for _ in range(5):
            with pytest.raises(ProviderError):
                guarded.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 5

    @pytest.mark.parametrize("code", [1009, 1010])
    def test_spent_credits_are_an_answer_and_never_open_it(self, guarded, requests_mock, code):
        requests_mock.get(URL, status_code=429, json=status(code, "credits spent"))

        errors = []
        for _ in range(6):
            with pytest.raises(ProviderUnavailable) as raised:
                guarded.latest_by_symbols(["BTC"], "USD")
            errors.append(raised.value)

        assert requests_mock.call_count == 6
        assert not any(isinstance(error, CircuitOpen) for error in errors)
        assert {error.upstream_code for error in errors} == {code}  # clients keep the reason

    def test_a_success_resets_the_count(self, guarded, requests_mock):
        requests_mock.get(URL, [{"status_code": 500, "json": status(500)}] * 2
                          + [{"json": body("quotes_latest_v2_BTC_ETH.json")}]
                          + [{"status_code": 500, "json": status(500)}] * 2)
        fail_times(guarded, 2)
        guarded.latest_by_symbols(["BTC"], "USD")
        fail_times(guarded, 2)

        with pytest.raises(ProviderUnavailable) as raised:
            guarded.latest_by_symbols(["BTC"], "USD")

        assert not isinstance(raised.value, CircuitOpen)


class TestTrialsNeverStick:
    @pytest.mark.parametrize("error", [RecursionError("deeply nested"), ValueError("Retry-After: ²"),
                                       RuntimeError("anything"), KeyboardInterrupt()],
                             ids=["RecursionError", "ValueError", "RuntimeError", "KeyboardInterrupt"])
    def test_a_trial_ended_by_any_exception_lets_the_next_call_try(self, breaker, now, error):
        open_then_cool_down(breaker, now)

        with pytest.raises(type(error)), breaker.guard():
            assert breaker.trial_running
            raise error

        assert not breaker.trial_running
        with breaker.guard():  # the next call is let through as a new trial, and closes it
            pass
        assert breaker.opened_at is None

    def test_a_deeply_nested_json_body_in_a_trial_does_not_stick_it_open(self, guarded, requests_mock, now):
        requests_mock.get(URL, status_code=500, json=status(500))
        fail_times(guarded, 3)
        now[0] += 31
        requests_mock.get(URL, text="[" * 100_000 + "]" * 100_000)

        with pytest.raises(ProviderError):
            guarded.latest_by_symbols(["BTC"], "USD")
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")

    def test_a_junk_retry_after_header_in_a_trial_does_not_stick_it_open(self, guarded, requests_mock, now):
        requests_mock.get(URL, status_code=500, json=status(500))
        fail_times(guarded, 3)
        now[0] += 31
        requests_mock.get(URL, status_code=503, text="busy", headers={"Retry-After": "²"})

        with pytest.raises(ProviderUnavailable):
            guarded.latest_by_symbols(["BTC"], "USD")
        now[0] += 31
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")

    def test_an_unexpected_exception_in_a_trial_is_a_502_and_ends_the_trial(self, guarded, requests_mock, now,
                                                                           breaker):
        requests_mock.get(URL, status_code=500, json=status(500))
        fail_times(guarded, 3)
        now[0] += 31
        requests_mock.get(URL, exc=RuntimeError("surprise"))

        with pytest.raises(ProviderError):
            guarded.latest_by_symbols(["BTC"], "USD")

        assert not breaker.trial_running
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))
        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")
