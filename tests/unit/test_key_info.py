"""Reading CoinMarketCap's /v1/key/info (CoinMarketCap's documented key info), under requests-mock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from src.adapters.coinmarketcap.key_info import CoinMarketCapKeyInfo, KeyInfo
from src.domain.errors import ProviderError, ProviderUnavailable

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cmc" / "key_info.json"
URL = "https://cmc.test/v1/key/info"


@pytest.fixture
def reader():
    return CoinMarketCapKeyInfo(base_url="https://cmc.test", api_key="secret-key-123")


def test_the_documented_answer_gives_the_plan_and_its_resets(reader, requests_mock):
    requests_mock.get(URL, json=json.loads(FIXTURE.read_text()))

    info = reader.read()

    assert info == KeyInfo(daily_credits=333, calls_per_minute=30, monthly_credits=10000,
                           daily_reset=datetime(2026, 11, 27, tzinfo=UTC),
                           monthly_reset=datetime(2026, 12, 1, tzinfo=UTC), credits_used_today=8)
    assert requests_mock.last_request.headers["X-CMC_PRO_API_KEY"] == "secret-key-123"
    assert "secret" not in requests_mock.last_request.url


def test_missing_or_junk_figures_are_unknown_not_errors(reader, requests_mock):
    requests_mock.get(URL, json={"status": {"error_code": 0}, "data": {"plan": {
        "credit_limit_daily": "lots", "rate_limit_minute": True}}})

    assert reader.read() == KeyInfo(daily_credits=None, calls_per_minute=None)


@pytest.mark.parametrize("status, code, error", [(429, 1008, ProviderUnavailable),
                                                 (500, 500, ProviderUnavailable),
                                                 (401, 1001, ProviderError)])
def test_refusals_are_domain_errors_with_the_upstream_code(reader, requests_mock, status, code, error):
    requests_mock.get(URL, status_code=status, json={"status": {"error_code": code}})

    with pytest.raises(error) as raised:
        reader.read()
    assert raised.value.upstream_code == code


def test_the_key_never_shows_in_its_repr(reader):
    assert "secret" not in repr(reader)


def test_a_redirect_is_never_followed_so_the_key_goes_nowhere_else(reader, requests_mock):
    requests_mock.get(URL, status_code=302, headers={"Location": "http://elsewhere.example/steal"})
    elsewhere = requests_mock.get("http://elsewhere.example/steal", json={})

    with pytest.raises((ProviderError, ProviderUnavailable)):
        reader.read()

    assert not elsewhere.called


@pytest.mark.parametrize("body", [
    '{"status": {"error_code": 0}, "data": {"plan": {"credit_limit_daily": 1e400,'
    ' "rate_limit_minute": NaN}, "usage": {"current_day": {"credits_used": -Infinity}}}}',
    '{"status": {"error_code": 0}, "data": {"plan": ["credit_limit_daily", 333], "usage": "x"}}',
    '{"status": {"error_code": 0}, "data": ["plan"]}',
])
def test_figures_beyond_numbers_or_sections_that_are_no_objects_are_unknown(
        reader, requests_mock, body):
    requests_mock.get(URL, text=body, headers={"Content-Type": "application/json"})

    assert reader.read() == KeyInfo(daily_credits=None, calls_per_minute=None)
