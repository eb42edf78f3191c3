"""CoinMarketCap's answers classified: what is retried, what the breaker counts, what clients see."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from src.adapters.coinmarketcap import (
    CircuitBreaker,
    CircuitOpen,
    CoinMarketCapProvider,
)
from src.adapters.coinmarketcap.answers import (
    MAX_RETRY_AFTER_SECONDS,
    parse_retry_after,
)
from src.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from tests.unit.cmc_support import BASE, KEY, URL, FakeClock, body, status

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def provider(clock):
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock, max_attempts=3)


class TestProxyPages:
    @pytest.mark.parametrize("http", [500, 502, 503, 520])
    def test_a_cdn_html_5xx_page_is_unavailable_and_retried(self, provider, requests_mock, http):
        requests_mock.get(URL, status_code=http, text=HTML_502, headers={"Content-Type": "text/html"})

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 3
        assert "cloudflare" not in str(raised.value) and "<html>" not in str(raised.value)

    def test_a_cdn_html_504_page_is_a_timeout(self, provider, requests_mock):
        requests_mock.get(URL, status_code=504, text=HTML_502)

        with pytest.raises(ProviderTimeout):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_a_cdn_html_5xx_page_counts_as_a_failure_for_the_breaker(self, clock, requests_mock):
        breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=30, clock=clock)
        provider = CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock,
                                         max_attempts=1, breaker=breaker)
        requests_mock.get(URL, [{"status_code": 500, "json": status(500)}] * 2
                          + [{"status_code": 502, "text": HTML_502}])

        for _ in range(3):
            with pytest.raises(ProviderUnavailable):
                provider.latest_by_symbols(["BTC"], "USD")

        with pytest.raises(CircuitOpen):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_a_cdn_html_403_page_is_a_provider_error_not_retried(self, provider, requests_mock):
        requests_mock.get(URL, status_code=403, text=HTML_502)

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

        assert requests_mock.call_count == 1


class TestUpstreamText:
    def test_the_error_message_is_ours_and_carries_the_upstream_code(self, provider, requests_mock):
        requests_mock.get(URL, status_code=401, json=body("error_401.json"))

        with pytest.raises(ProviderError) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert str(raised.value) == "CoinMarketCap rejected our credentials or plan"
        assert raised.value.upstream_code == 1001

    def test_the_upstream_text_goes_to_the_log(self, provider, requests_mock, caplog):
        requests_mock.get(URL, status_code=401, json=body("error_401.json"))

        with pytest.raises(ProviderError):
            provider.latest_by_symbols(["BTC"], "USD")

        assert "This API Key is invalid." in caplog.text

    @pytest.mark.parametrize("code", ["1001; DROP", 10**40, True, -3, "²"])
    def test_a_junk_error_code_is_not_passed_on(self, provider, requests_mock, code):
        requests_mock.get(URL, status_code=401, json=status(0, "x") | {"status": {"error_code": code}})

        with pytest.raises(ProviderError) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert raised.value.upstream_code is None


NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class TestRetryAfter:
    @pytest.mark.parametrize("header, seconds", [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        ("Thu, 26 Nov 2026 12:00:30 GMT", 30.0),
        ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),  # a date in the past: no wait
        ("86401", float(MAX_RETRY_AFTER_SECONDS)),
        ("9" * 309, float(MAX_RETRY_AFTER_SECONDS)),  # float() of this is inf
        ("9" * 5000, float(MAX_RETRY_AFTER_SECONDS)),  # int() of this raises
        ("Fri, 31 Dec 9999 23:59:59 GMT", float(MAX_RETRY_AFTER_SECONDS)),
    ])
    def test_valid_values_are_seconds_capped_at_a_day(self, header, seconds):
        assert parse_retry_after(header, now=NOW) == seconds

    @pytest.mark.parametrize("header", [None, "", "²", "٣", "１２", "1.5", "-1", "soon", "1e3", "inf", "NaN",
                                        "Thu, 32 Nov 2026 12:00:30 GMT", "Thu, 26 Nov 2026 ٢٢:00:30 GMT"])
    def test_junk_is_none(self, header):
        assert parse_retry_after(header, now=NOW) is None

    def test_a_huge_retry_after_is_capped_not_a_failure(self, provider, requests_mock):
        requests_mock.get(URL, status_code=429, json=body("error_429.json"), headers={"Retry-After": "9" * 309})

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert raised.value.retry_after == MAX_RETRY_AFTER_SECONDS
        assert requests_mock.call_count == 1

    def test_unicode_digits_fall_back_to_the_backoff(self, provider, requests_mock, clock):
        requests_mock.get(URL, status_code=503, text="busy", headers={"Retry-After": "²"})

        with pytest.raises(ProviderUnavailable) as raised:
            provider.latest_by_symbols(["BTC"], "USD")

        assert raised.value.retry_after is None
        assert requests_mock.call_count == 3 and all(0 < s <= 4.25 for s in clock.sleeps)
