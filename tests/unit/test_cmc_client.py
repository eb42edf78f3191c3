"""CoinMarketCapProvider under requests-mock: requests it sends, answers it reads, one deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
import requests

from src.adapters.coinmarketcap import CircuitBreaker, CoinMarketCapProvider
from src.domain.deadline import Deadline
from src.domain.errors import (
    BudgetSpent,
    InvalidCurrency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from tests.unit.cmc_support import BASE, KEY, URL, FakeClock, body, status


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def provider(clock):
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock,
                                 max_attempts=3)


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

    def test_fetched_at_is_when_we_fetched_not_the_providers_status_time(self, provider,
                                                                          requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["status"]["timestamp"] = "2026-11-26T03:29:13.142Z"  # CoinMarketCap's clock
        requests_mock.get(URL, json=payload)
        before = datetime.now(UTC)

        found = provider.latest_by_symbols(["BTC", "ETH"], "USD")

        # The history's `timestamp` (README, Price history): when coinquote fetched the quote.
        assert before <= found["BTC"].fetched_at <= datetime.now(UTC)
        assert found["ETH"].fetched_at == found["BTC"].fetched_at

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

    def test_a_400_that_merely_mentions_symbol_is_a_provider_error_not_an_empty_answer(
            self, provider, requests_mock):
        requests_mock.get(URL, status_code=400, json=status(400, '"symbol" must only contain "symbol" chars'))

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

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

    def test_invalid_convert_is_an_invalid_currency_in_our_words(self, provider, requests_mock):
        requests_mock.get(URL, status_code=400, json=status(400, 'Invalid value for "convert": "XYZ"'))

        with pytest.raises(InvalidCurrency) as raised:
            provider.latest_by_ids([1], "XYZ")

        assert str(raised.value) == "unknown convert currency XYZ"

    def test_plan_limit_is_a_provider_error_with_the_upstream_code_not_its_text(self, provider, requests_mock):
        requests_mock.get(URL, status_code=400, json=body("error_convert_limit_basic_plan.json"))

        with pytest.raises(ProviderError) as raised:
            provider.latest_by_ids([1], "EUR")

        assert "limited" not in str(raised.value)
        assert raised.value.upstream_code == 400


class TestErrors:
    @pytest.mark.parametrize(
        "http, payload, code",
        [
            (400, status(400, '"id" is not allowed'), 400),
            (401, body("error_401.json"), 1001),
            (401, body("error_401_missing_key.json"), 1002),
            (402, status(1003, "Your API Key must be activated."), 1003),
            (402, status(1004, "Your API Key's subscription plan has expired."), 1004),
            (403, status(1005, "An API Key is required for this call."), 1005),
            (403, status(1006, "Your API Key subscription plan doesn't support this endpoint."), 1006),
            (403, status(1007, "This API Key has been disabled."), 1007),
            (200, status(1001, "This API Key is invalid."), 1001),
        ],
    )
    def test_rejections_are_provider_errors_with_our_message_and_their_code(
            self, provider, requests_mock, http, payload, code):
        requests_mock.get(URL, status_code=http, json=payload)

        with pytest.raises(ProviderError) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1
        assert raised.value.upstream_code == code
        assert payload["status"]["error_message"] not in str(raised.value)

    def test_a_minute_limit_verdict_is_not_retried_within_its_window(self, provider, requests_mock,
                                                                     clock):
        # Asking again within the minute is refused again and counts against the same minute:
        # the credit governor makes every process wait for the window instead.
        requests_mock.get(URL, status_code=429, json=body("error_429.json"),
                          headers={"Retry-After": "2"})

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1
        assert clock.sleeps == []
        assert raised.value.retry_after == 2.0
        assert raised.value.upstream_code == 1008

    def test_every_retry_passes_the_gate_first_and_a_refusal_ends_the_retries(self, clock,
                                                                             requests_mock):
        gate_calls = []

        def gate(previous_failure):
            gate_calls.append(requests_mock.call_count)
            if len(gate_calls) == 2:
                raise BudgetSpent("the CoinMarketCap credit budget is spent", retry_after=30)

        provider = CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep,
                                         clock=clock, max_attempts=5, before_retry=gate)
        requests_mock.get(URL, status_code=500, json={"status": {"error_code": 500}})

        with pytest.raises(BudgetSpent):
            provider.latest_by_symbols(["BTC"], "USD")

        assert gate_calls == [1, 2]  # asked before the 2nd and the 3rd call, never before the 1st
        assert requests_mock.call_count == 2

    def test_minute_rate_limit_without_header_waits_for_the_next_minute(self, provider, requests_mock):
        requests_mock.get(URL, status_code=429, json=body("error_429.json"))

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        # status.timestamp is 03:29:14.716Z: the window resets in 45.284 s, beyond the deadline.
        assert raised.value.retry_after == pytest.approx(45.284)
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize("code", [1009, 1010])
    def test_spent_quota_is_unavailable_and_not_retried(self, provider, requests_mock, code):
        requests_mock.get(URL, status_code=429, json=status(code, "quota"))

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1

    def test_server_errors_are_retried_with_backoff(self, provider, requests_mock, clock):
        requests_mock.get(URL, status_code=500, json=status(500, "An internal server error occurred"))

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert len(clock.sleeps) == 2 and all(0 < s <= 4.25 for s in clock.sleeps)

    def test_retry_succeeds_when_the_provider_recovers(self, provider, requests_mock, clock):
        http_date = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
        requests_mock.get(URL, [
            {"status_code": 503, "text": "Service Unavailable", "headers": {"Retry-After": http_date}},
            {"exc": requests.ConnectTimeout},
            {"json": body("quotes_latest_v2_BTC_ETH.json")},
        ])

        found = provider.latest_by_symbols(["BTC"], "USD")

        assert found["BTC"].coin.id == 1
        assert 1.5 < clock.sleeps[0] <= 3.0

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

    def test_a_connection_dropped_mid_body_is_unavailable_and_retried(self, provider, requests_mock):
        requests_mock.get(URL, exc=requests.exceptions.ChunkedEncodingError("Connection broken"))

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert not isinstance(raised.value, ProviderTimeout)
        assert requests_mock.call_count == 3

    def test_malformed_json_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, text='{"status": {"error_code": 0, "data": [')

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_success_without_data_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, json={"status": {"error_code": 0, "error_message": None}})

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_an_unexpected_exception_while_calling_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, exc=RuntimeError("surprise"))

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_a_deeply_nested_json_body_is_a_provider_error(self, provider, requests_mock):
        requests_mock.get(URL, text="[" * 100_000 + "]" * 100_000)

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_repr_does_not_show_the_key(self, provider):
        assert KEY not in repr(provider)


class TestDeadline:
    """One deadline bounds the whole call: timeouts shrink with it, waits never cross it."""

    def test_timeouts_passed_to_the_session_shrink_with_the_deadline(self, provider, requests_mock, clock):
        def slow_503(request, context):
            clock.now += 2.5  # each answer takes 2.5 s
            context.status_code = 503
            context.headers["Retry-After"] = "1"
            return "busy"

        requests_mock.get(URL, text=slow_503)

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD", deadline=Deadline(8, clock=clock))

        timeouts = [r.timeout for r in requests_mock.request_history]
        # 8 s left, then 8 - 2.5 - 1 = 4.5, then 4.5 - 2.5 - 1 = 1.
        assert timeouts == [(3.05, 5.0), (3.05, 4.5), (1.0, 1.0)]

    def test_a_deadline_partly_spent_before_the_call_bounds_the_first_attempt(self, provider, requests_mock,
                                                                              clock):
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))
        deadline = Deadline(8, clock=clock)
        clock.now += 6.5  # e.g. spent waiting for another process's fetch

        provider.latest_by_symbols(["BTC"], "USD", deadline=deadline)

        assert requests_mock.last_request.timeout == (1.5, 1.5)

    def test_the_convert_call_shares_the_request_deadline(self, provider, requests_mock, clock):
        requests_mock.get(URL, json=body("quotes_latest_v2_id_convert_EUR.json"))
        deadline = Deadline(8, clock=clock)
        clock.now += 7

        provider.latest_by_ids([1027], "EUR", deadline=deadline)

        assert requests_mock.last_request.timeout == (1.0, 1.0)

    def test_waits_never_cross_the_deadline(self, provider, requests_mock, clock):
        requests_mock.get(URL, status_code=503, json={"status": {"error_code": 503}},
                          headers={"Retry-After": "3"})
        provider.max_attempts = 10
        started = clock.now

        with pytest.raises(ProviderUnavailable):
            provider.latest_by_symbols(["BTC"], "USD", deadline=Deadline(8, clock=clock))

        assert clock.now - started <= 8
        assert clock.sleeps == [3.0, 3.0]
        assert requests_mock.call_count == 3

    def test_a_spent_deadline_is_a_timeout_without_any_call(self, provider, requests_mock, clock):
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))
        deadline = Deadline(1, clock=clock)
        clock.now += 2

        with pytest.raises(ProviderTimeout):
            provider.latest_by_symbols(["BTC"], "USD", deadline=deadline)

        assert requests_mock.call_count == 0
        assert provider.breaker.failures == 0

    def test_without_a_deadline_the_provider_budget_applies(self, clock, requests_mock):
        provider = CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock,
                                         budget_seconds=2.0, breaker=CircuitBreaker())
        requests_mock.get(URL, json=body("quotes_latest_v2_BTC_ETH.json"))

        provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.last_request.timeout == (2.0, 2.0)
