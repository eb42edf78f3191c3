"""The HTTP API through the Flask test client, with fakes behind the ports."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from src.entrypoints.app import create_app
from tests.conftest import TEST_KEY, NoServerErrorClient
from tests.fakes import FixedClock
from tests.unit.cmc_support import BASE as CMC_BASE
from tests.unit.cmc_support import ECHO_FAULTS, adapter_log, echo_fault  # noqa: F401
from tests.unit.cmc_support import URL as CMC_URL
from tests.unit.cmc_support import body as cmc_body


class TestQuotes:
    def test_answers_the_contract_shape(self, client):
        response = client.get("/api/v1/quotes?symbol=btc")

        assert response.status_code == 200
        body = response.get_json()
        btc = body["data"]["BTC"]
        assert {"id", "name", "symbol", "slug", "cmc_rank", "circulating_supply", "total_supply",
                "max_supply", "last_updated", "source", "quote"} <= set(btc)
        assert btc["source"] == "provider"
        assert set(btc["quote"]["USD"]) >= {"price", "volume_24h", "market_cap", "percent_change_1h",
                                           "percent_change_24h", "percent_change_7d", "last_updated"}
        assert btc["quote"]["USD"]["last_updated"] == "2026-11-26T03:00:00.000Z"
        assert body["unknown_symbols"] == []

    def test_prices_are_json_numbers_with_every_digit(self, client):
        text = client.get("/api/v1/quotes?symbol=BTC").get_data(as_text=True)

        assert '"price":67250.123456789012345678,' in text

    def test_sources_follow_the_rules_across_requests(self, client, cache):
        assert client.get("/api/v1/quotes?symbol=BTC").get_json()["data"]["BTC"]["source"] == "provider"
        assert client.get("/api/v1/quotes?symbol=BTC").get_json()["data"]["BTC"]["source"] == "cache"
        cache.entries.clear()
        assert client.get("/api/v1/quotes?symbol=BTC").get_json()["data"]["BTC"]["source"] == "database"

    def test_data_keeps_request_order_and_collapses_duplicates(self, client):
        body = client.get("/api/v1/quotes?symbol=eth,BTC,eth").get_json()

        assert list(body["data"]) == ["ETH", "BTC"]

    def test_unknown_symbols_are_listed(self, client):
        body = client.get("/api/v1/quotes?symbol=BTC,NOPE").get_json()

        assert list(body["data"]) == ["BTC"]
        assert body["unknown_symbols"] == ["NOPE"]

    def test_404_when_no_symbol_exists(self, client):
        response = client.get("/api/v1/quotes?symbol=NOPE,NADA")

        assert response.status_code == 404
        body = response.get_json()
        assert body["code"] == 404 and body["status"] == "Not Found"
        assert "NOPE" in body["message"]
        assert body["errors"] == {"unknown_symbols": ["NOPE", "NADA"]}

    def test_convert_adds_the_converted_quote(self, client):
        body = client.get("/api/v1/quotes?symbol=ETH&convert=eur").get_json()

        quotes = body["data"]["ETH"]["quote"]
        assert set(quotes) == {"USD", "EUR"}
        assert Decimal(str(quotes["EUR"]["price"])) == pytest.approx(Decimal("3512.44") / Decimal("1.08"))

    def test_unknown_convert_currency_is_422(self, client):
        response = client.get("/api/v1/quotes?symbol=ETH&convert=XYZ")

        assert response.status_code == 422
        assert "XYZ" in response.get_json()["message"]


class TestBadInput:
    @pytest.mark.parametrize(
        "query",
        [
            "",
            "?symbol=",
            "?symbol=BTC,,ETH",
            "?symbol=BTC%20ETH",
            "?symbol=BTC%0D%0Aflush_all",
            "?symbol=%D0%92%D0%A2%D0%A1",
            "?symbol=" + "A" * 21,
            "?symbol=" + ",".join(f"S{i}" for i in range(101)),
            "?symbol=BTC&convert=",
            "?symbol=BTC&convert=E%20UR",
        ],
    )
    def test_422_with_a_message_and_nothing_reaches_the_ports(self, client, query, provider, repo, cache):
        response = client.get("/api/v1/quotes" + query)

        assert response.status_code == 422
        body = response.get_json()
        assert body["code"] == 422 and body["message"].startswith("Invalid query parameter")
        assert "query" in body["errors"]
        assert provider.calls == [] and repo.reads == [] and cache.gets == []

    def test_a_too_long_query_string_is_422_before_any_parsing(self, client, provider, repo, cache):
        response = client.get("/api/v1/quotes?symbol=BTC&pad=" + "x" * 5000)

        assert response.status_code == 422
        assert response.get_json()["message"] == "the query string is longer than 4096 bytes"
        assert provider.calls == [] and repo.reads == [] and cache.gets == []


class TestUpstreamErrors:
    @pytest.mark.parametrize(
        "error, status",
        [
            (ProviderError("CoinMarketCap rejected our credentials"), 502),
            (ProviderUnavailable("CoinMarketCap rate limit reached"), 503),
            (ProviderTimeout("CoinMarketCap did not answer in time"), 504),
        ],
    )
    def test_maps_provider_errors_to_gateway_statuses(self, client, provider, error, status):
        provider.fail_with = error

        response = client.get("/api/v1/quotes?symbol=BTC")

        assert response.status_code == status
        assert response.get_json()["message"] == str(error)
        assert "Retry-After" not in response.headers

    def test_retry_after_is_forwarded_rounded_up(self, client, provider):
        provider.fail_with = ProviderUnavailable("rate limited", retry_after=12.2)

        response = client.get("/api/v1/quotes?symbol=BTC")

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "13"


class TestOtherEndpoints:
    def test_healthz(self, client):
        assert client.get("/healthz").get_json() == {"status": "ok", "checks": {}}

    def test_readyz_names_the_failing_component(self, client, cache, repo):
        assert client.get("/readyz").status_code == 200
        cache.down = True

        response = client.get("/readyz")

        assert response.status_code == 503
        assert response.get_json()["checks"]["cache"].startswith("failing")
        assert response.get_json()["checks"]["database"] == "ok"

    def test_unknown_path_is_a_json_404(self, client):
        response = client.get("/nope")

        assert response.status_code == 404
        assert response.get_json()["message"]

    def test_wrong_method_is_a_405_naming_the_allowed_methods(self, client):
        response = client.post("/api/v1/quotes?symbol=BTC")

        assert response.status_code == 405
        assert "GET" in response.headers["Allow"]
        assert response.get_json()["message"]

    def test_docs_pages_allow_only_this_server(self, client):
        csp = client.get("/redoc").headers["Content-Security-Policy"]

        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert "Content-Security-Policy" not in client.get("/api/v1/quotes?symbol=BTC").headers

    def test_openapi_document_describes_the_quotes_operation(self, client):
        spec = client.get("/openapi.json").get_json()

        operation = spec["paths"]["/api/v1/quotes"]["get"]
        assert {p["name"] for p in operation["parameters"]} == {"symbol", "convert"}
        assert {"200", "404", "422", "502", "503", "504"} <= set(operation["responses"])

    @pytest.mark.parametrize("path, asset", [("/swagger-ui", "docs-assets/swagger_ui/swagger-ui-bundle.js"),
                                             ("/redoc", "docs-assets/redoc/redoc.standalone.js")])
    def test_docs_pages_load_their_assets_from_the_app(self, client, path, asset):
        page = client.get(path).get_data(as_text=True)

        assert asset in page
        assert "cdn" not in page.lower() and "unpkg" not in page.lower()
        assert client.get("/" + asset).status_code == 200


# The real adapter behind the real app, against an upstream that echoes the key it receives in
# its error text and headers, through every fault path (see tests/unit/cmc_support.py).
@pytest.mark.parametrize("fault", ECHO_FAULTS)
def test_an_echoed_key_reaches_no_response_and_no_log_record(settings, repo, cache, requests_mock, caplog,
                                                             adapter_log, fault):
    caplog.set_level(logging.DEBUG)
    provider = CoinMarketCapProvider(base_url=CMC_BASE, api_key=TEST_KEY, sleep=lambda seconds: None)
    app = create_app(settings, provider=provider, repository=repo, cache=cache, clock=FixedClock())
    app.test_client_class = NoServerErrorClient
    client = app.test_client()
    echo_fault(requests_mock, CMC_URL, fault)  # every call faults...
    requests_mock.get(CMC_URL + "?symbol=eth", json=cmc_body("quotes_latest_v2_BTC_ETH.json"))  # ...but ETH's

    responses = [client.get("/api/v1/quotes?" + query)
                 for query in ("symbol=BTC", "symbol=BTC,NOPE", "symbol=ETH&convert=EUR", "symbol=%00")]

    assert requests_mock.request_history[0].headers["X-CMC_PRO_API_KEY"] == TEST_KEY
    assert {r.status_code for r in responses[:3]} - {200}, "no fault path ran"
    for response in responses:
        assert TEST_KEY not in response.get_data(as_text=True)
        assert TEST_KEY not in repr(dict(response.headers))
    assert TEST_KEY not in adapter_log.getvalue()
    assert TEST_KEY not in caplog.text


class TestRateLimit:
    @pytest.fixture
    def limited(self, settings, provider, repo, cache):
        from dataclasses import replace

        app = create_app(replace(settings, rate_limit="3/minute"), provider=provider, repository=repo,
                         cache=cache, clock=FixedClock())
        app.test_client_class = NoServerErrorClient
        return app.test_client()

    def test_429_with_retry_after_beyond_the_limit_per_client(self, limited):
        statuses = [limited.get("/api/v1/quotes?symbol=BTC").status_code for _ in range(4)]
        over = limited.get("/api/v1/quotes?symbol=BTC")
        other_client = limited.get("/api/v1/quotes?symbol=BTC", environ_base={"REMOTE_ADDR": "10.9.9.9"})

        assert statuses == [200, 200, 200, 429]
        assert over.status_code == 429
        assert int(over.headers["Retry-After"]) > 0
        assert over.get_json()["code"] == 429 and over.get_json()["message"]
        assert other_client.status_code == 200

    def test_probes_and_docs_are_not_limited(self, limited):
        for _ in range(5):
            assert limited.get("/healthz").status_code == 200
            assert limited.get("/openapi.json").status_code == 200

    def test_no_limit_when_unset(self, client):
        assert {client.get("/api/v1/quotes?symbol=BTC").status_code for _ in range(10)} == {200}
