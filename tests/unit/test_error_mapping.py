"""Domain errors rendered by the HTTP layer: our message, CoinMarketCap's code, a sane Retry-After."""

from __future__ import annotations

import pytest

from src.domain.errors import ProviderError, ProviderUnavailable
from src.entrypoints.app import create_app
from tests.conftest import NoServerErrorClient
from tests.fakes import (
    FakeQuoteProvider,
    FixedClock,
    InMemoryQuoteCache,
    InMemoryQuoteRepository,
)


@pytest.fixture
def provider():
    return FakeQuoteProvider({})


@pytest.fixture
def client(settings, provider):
    app = create_app(settings, provider=provider, repository=InMemoryQuoteRepository(),
                     cache=InMemoryQuoteCache(clock=FixedClock()), clock=FixedClock())
    app.test_client_class = NoServerErrorClient
    return app.test_client()


def test_the_upstream_code_is_shown_as_upstream_error_code_beside_our_message(client, provider):
    provider.fail_with = ProviderError("CoinMarketCap rejected our credentials or plan", upstream_code=1001)

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 502
    assert response.get_json() == {"code": 502, "status": "Bad Gateway",
                                   "message": "CoinMarketCap rejected our credentials or plan",
                                   "errors": {"upstream_error_code": 1001}}


def test_no_errors_member_without_an_upstream_code(client, provider):
    provider.fail_with = ProviderUnavailable("CoinMarketCap is unavailable (HTTP 502)")

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 503
    assert "errors" not in response.get_json()


@pytest.mark.parametrize("retry_after, header", [
    (12.2, "13"),
    (0.0, "1"),
    (10.0 ** 9, "86400"),
    (float("inf"), None),  # math.ceil(inf) raised OverflowError: a 500
    (float("nan"), None),
])
def test_retry_after_is_whole_seconds_capped_at_a_day_and_never_a_500(client, provider, retry_after, header):
    provider.fail_with = ProviderUnavailable("CoinMarketCap rate limit reached", retry_after=retry_after)

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 503
    assert response.headers.get("Retry-After") == header
