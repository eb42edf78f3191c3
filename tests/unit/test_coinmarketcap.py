"""The CoinMarketCap adapter under requests-mock, with bodies shaped like CoinMarketCap's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from src.adapters.coinmarketcap import CircuitBreaker, CircuitOpen, CoinMarketCapProvider
from src.domain.errors import InvalidCurrency, ProviderError, ProviderTimeout, ProviderUnavailable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cmc"
BASE = "https://pro-api.example.test"
URL = BASE + "/v2/cryptocurrency/quotes/latest"
KEY = "unit-test-key-5f1c0e7a"


def body(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def provider(sleeps):
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=sleeps.append, max_attempts=3)


class TestQuotesBySymbol:
    def test_parses_v2_lists_exactly(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        found = provider.latest_by_symbols(["BTC", "ETH"], "USD")

        btc = found["BTC"]
        assert (btc.coin.id, btc.coin.name, btc.coin.slug, btc.coin.cmc_rank) == (1, "Bitcoin", "bitcoin", 1)
        assert btc.quote.price == Decimal("67250.12")
        assert btc.quote.market_cap == Decimal("1325670882255.16")
        assert btc.coin.max_supply == Decimal("21000000")
        assert found["ETH"].coin.max_supply is None
        assert btc.quote.last_updated == datetime(2026, 11, 26, 3, 29, tzinfo=UTC)
        assert btc.fetched_at == datetime(2026, 11, 26, 3, 29, 13, 142000, tzinfo=UTC)

    def test_sends_the_key_only_in_the_header(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        provider.latest_by_symbols(["BTC", "ETH"], "USD")

        sent = requests_mock.last_request
        assert sent.headers["X-CMC_PRO_API_KEY"] == KEY
        assert sent.headers["Accept"] == "application/json"
        assert KEY not in sent.url
        assert sent.qs == {"symbol": ["btc,eth"], "convert": ["usd"], "skip_invalid": ["true"]}

    def test_shared_symbol_picks_the_active_coin_with_the_best_rank(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v2_ETC_shared_symbol.json"))

        found = provider.latest_by_symbols(["ETC"], "USD")

        assert found["ETC"].coin.id == 1321
        assert found["ETC"].quote.price == Decimal("26.91")

    def test_v1_style_objects_are_accepted(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v1.json"))

        assert provider.latest_by_symbols(["BTC"], "USD")["BTC"].coin.id == 1

    def test_symbols_skipped_as_invalid_are_absent(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        found = provider.latest_by_symbols(["BTC", "NOPE"], "USD")

        assert set(found) == {"BTC"}

    @pytest.mark.parametrize("name", ["error_invalid_symbol.json", "error_invalid_symbols_plural.json"])
    def test_all_symbols_invalid_means_none_found(self, provider, requests_mock, name):
        requests_mock.get(URL, status_code=400, json=body(name))

        assert provider.latest_by_symbols(["XYZ", "QQQ"], "USD") == {}

    def test_unknown_fields_are_ignored_and_missing_optional_ones_are_none(self, provider, requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        coin = payload["data"]["BTC"][0]
        coin["brand_new_field"] = {"x": 1}
        del coin["num_market_pairs"], coin["quote"]["USD"]["percent_change_90d"]
        requests_mock.get(URL, json=payload)

        found = provider.latest_by_symbols(["BTC"], "USD")["BTC"]

        assert found.coin.num_market_pairs is None
        assert found.quote.percent_change_90d is None

    def test_error_code_null_counts_as_success(self, provider, requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["status"]["error_code"] = None
        requests_mock.get(URL, json=payload)

        assert "BTC" in provider.latest_by_symbols(["BTC"], "USD")


class TestQuotesById:
    def test_converts_by_id_and_reads_the_currency_key(self, provider, requests_mock):
        requests_mock.get(URL, json=body("quotes_latest_v2_id_convert_EUR.json"))

        converted = provider.latest_by_ids([1027], "EUR")

        assert requests_mock.last_request.qs == {"id": ["1027"], "convert": ["eur"], "skip_invalid": ["true"]}
        assert converted[1027].currency == "EUR"
        assert converted[1027].price == Decimal("3239.6605792289242")

    def test_invalid_convert_is_an_invalid_currency(self, provider, requests_mock):
        requests_mock.get(URL, status_code=400, json={"status": {
            "timestamp": "2026-11-26T03:29:14.117Z", "error_code": 400,
            "error_message": 'Invalid value for "convert": "XYZ"', "elapsed": 0, "credit_count": 0}})

        with pytest.raises(InvalidCurrency, match="XYZ"):
            provider.latest_by_ids([1], "XYZ")

    def test_plan_limit_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, status_code=400, json=body("error_convert_limit_basic_plan.json"))

        with pytest.raises(ProviderError, match="limited to 1 convert"):
            provider.latest_by_ids([1], "EUR")


def _status(code: int, message: str = "x") -> dict:
    return {"status": {"timestamp": "2026-11-26T03:29:14.716Z", "error_code": code,
                       "error_message": message, "elapsed": 0, "credit_count": 0}}


class TestErrors:
    @pytest.mark.parametrize(
        "http, payload",
        [
            (400, _status(400, '"id" is not allowed')),
            (401, body("error_401.json")),
            (401, body("error_401_missing_key.json")),
            (402, _status(1003, "Your API Key must be activated.")),
            (402, _status(1004, "Your API Key's subscription plan has expired.")),
            (403, _status(1005, "An API Key is required for this call.")),
            (403, _status(1006, "Your API Key subscription plan doesn't support this endpoint.")),
            (403, _status(1007, "This API Key has been disabled.")),
            (200, _status(1001, "This API Key is invalid.")),
        ],
    )
    def test_rejections_are_provider_errors_and_never_retried(self, provider, requests_mock, http, payload):
        requests_mock.get(URL, status_code=http, json=payload)

        with pytest.raises(ProviderError) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1
        assert KEY not in str(raised.value)

    def test_minute_rate_limit_is_retried_then_unavailable_with_retry_after(self, provider, requests_mock, sleeps):
        requests_mock.get(URL, status_code=429, json=body("error_429.json"), headers={"Retry-After": "2"})

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert sleeps == [2.0, 2.0]
        assert raised.value.retry_after == 2.0

    def test_minute_rate_limit_without_header_waits_for_the_next_minute(self, provider, requests_mock):
        requests_mock.get(URL, status_code=429, json=body("error_429.json"))

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        # status.timestamp is 03:29:14.716Z: the window resets in 45.284 s, beyond the budget.
        assert raised.value.retry_after == pytest.approx(45.284)
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize("code", [1009, 1010])
    def test_spent_quota_is_unavailable_and_not_retried(self, provider, requests_mock, code):
        requests_mock.get(URL, status_code=429, json=_status(code, "quota"))

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1

    def test_server_errors_are_retried_with_backoff(self, provider, requests_mock, sleeps):
        requests_mock.get(URL, status_code=500, json=_status(500, "An internal server error occurred"))

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert len(sleeps) == 2 and all(0 < s <= 4.25 for s in sleeps)

    def test_retry_succeeds_when_the_provider_recovers(self, provider, requests_mock, sleeps):
        http_date = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
        requests_mock.get(URL, [
            {"status_code": 503, "text": "Service Unavailable", "headers": {"Retry-After": http_date}},
            {"exc": requests.ConnectTimeout},
            {"json": body("quotes_latest_v2_BTC_ETH.json")},
        ])

        found = provider.latest_by_symbols(["BTC"], "USD")

        assert found["BTC"].coin.id == 1
        assert 1.5 < sleeps[0] <= 3.0

    def test_timeout_is_a_provider_timeout(self, provider, requests_mock):
        requests_mock.get(URL, exc=requests.ReadTimeout)

        with pytest.raises(ProviderTimeout):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3

    def test_connection_error_is_unavailable(self, provider, requests_mock):
        requests_mock.get(URL, exc=requests.ConnectionError)

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert not isinstance(raised.value, ProviderTimeout)

    def test_malformed_json_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, text='{"status": {"error_code": 0, "data": [')

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_html_error_page_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, status_code=502, text="<html><h1>502 Bad Gateway</h1></html>",
                          headers={"Content-Type": "text/html"})

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_success_without_data_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, json={"status": {"error_code": 0, "error_message": None}})

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_non_numeric_price_is_a_provider_error(self, provider, requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["data"]["BTC"][0]["quote"]["USD"]["price"] = "a lot"
        requests_mock.get(URL, json=payload)

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_the_whole_attempt_is_bounded_by_the_budget(self, requests_mock, sleeps):
        provider = CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=sleeps.append,
                                         max_attempts=10, budget_seconds=8)
        requests_mock.get(URL, status_code=429, json=body("error_429.json"), headers={"Retry-After": "3"})

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")

        assert sum(sleeps) <= 8
        assert requests_mock.call_count == 3

    def test_repr_does_not_show_the_key(self, provider):
        assert KEY not in repr(provider)


class TestCircuitBreaker:
    @pytest.fixture
    def now(self):
        return [1000.0]

    @pytest.fixture
    def guarded(self, sleeps, now):
        breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=30, clock=lambda: now[0])
        return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=sleeps.append, max_attempts=1,
                                     breaker=breaker)

    def fail_times(self, provider, n):
        for _ in range(n):
            with pytest.raises(ProviderUnavailable):
                provider.latest_by_symbols(["BTC"], "USD")

    def test_opens_after_the_threshold_and_refuses_without_calling(self, guarded, requests_mock):
        requests_mock.get(URL, status_code=500, json=_status(500))
        self.fail_times(guarded, 3)

        with pytest.raises(CircuitOpen) as raised:
            guarded.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert raised.value.retry_after == pytest.approx(30)

    def test_a_trial_after_the_cool_down_closes_it_when_upstream_answers(self, guarded, requests_mock, now):
        requests_mock.get(URL, status_code=500, json=_status(500))
        self.fail_times(guarded, 3)
        now[0] += 31
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")
        assert "BTC" in guarded.latest_by_symbols(["BTC"], "USD")
        assert requests_mock.call_count == 5

    def test_a_failed_trial_opens_it_again(self, guarded, requests_mock, now):
        requests_mock.get(URL, exc=requests.ConnectionError)
        self.fail_times(guarded, 3)
        now[0] += 31

        self.fail_times(guarded, 1)

        with pytest.raises(CircuitOpen):
            guarded.latest_by_symbols(["BTC"], "USD")
        assert requests_mock.call_count == 4

    def test_rejections_do_not_open_it(self, guarded, requests_mock):
        requests_mock.get(URL, status_code=401, json=body("error_401.json"))

        for _ in range(5):
            with pytest.raises(ProviderError):
                guarded.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 5

    def test_a_success_resets_the_count(self, guarded, requests_mock):
        requests_mock.get(URL, [{"status_code": 500, "json": _status(500)}] * 2
                          + [{"json": body("quotes_latest_v2_BTC_ETH.json")}]
                          + [{"status_code": 500, "json": _status(500)}] * 2)
        self.fail_times(guarded, 2)
        guarded.latest_by_symbols(["BTC"], "USD")
        self.fail_times(guarded, 2)

        with pytest.raises(ProviderUnavailable) as raised:
            guarded.latest_by_symbols(["BTC"], "USD")

        assert not isinstance(raised.value, CircuitOpen)
