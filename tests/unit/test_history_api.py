"""GET /api/v1/quotes/history through the Flask test client over fakes; /chart; the command."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
from openapi_schema_validator import OAS30Validator

from src.domain.errors import StorageError
from src.entrypoints.app import create_app
from tests.conftest import NoServerErrorClient
from tests.fakes import (
    FakeQuoteProvider,
    FixedClock,
    InMemoryHistoryRepository,
    InMemoryQuoteCache,
    InMemoryQuoteRepository,
    coin_quote,
)
from tests.unit.test_openapi import resolve

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHART_ASSETS = Path(__file__).resolve().parents[2] / "src" / "entrypoints" / "http" / "chart" / "assets"


@pytest.fixture
def history_repo():
    return InMemoryHistoryRepository(rows=[
        ("BTC", coin_quote("BTC", 1, f"6000{i}.5", fetched_at=NOW - timedelta(minutes=7 * i), name="Bitcoin"))
        for i in range(10)
    ])


@pytest.fixture
def provider():
    return FakeQuoteProvider({})


@pytest.fixture
def app(settings, provider, history_repo):
    app = create_app(settings, provider=provider, repository=InMemoryQuoteRepository(),
                     cache=InMemoryQuoteCache(clock=FixedClock(NOW)), clock=FixedClock(NOW),
                     history_repository=history_repo)
    app.test_client_class = NoServerErrorClient
    return app


@pytest.fixture
def client(app):
    return app.test_client()


BAD = [
    ("", "symbol"),
    ("symbol=", "symbol"),
    ("symbol=B$C", "symbol"),
    ("symbol=" + "X" * 21, "symbol"),
    ("symbol=" + ",".join(f"S{i}" for i in range(11)), "symbol"),
    ("symbol=BTC,,ETH", "symbol"),
    ("symbol=BTC&interval=", "interval"),
    ("symbol=BTC&interval=3m", "interval"),
    ("symbol=BTC&interval=1H", "interval"),
    ("symbol=BTC&interval=daily", "interval"),
    ("symbol=BTC&count=0", "count"),
    ("symbol=BTC&count=10001", "count"),
    ("symbol=BTC&count=-1", "count"),
    ("symbol=BTC&count=1.5", "count"),
    ("symbol=BTC&count=ten", "count"),
    ("symbol=BTC&count=", "count"),
    ("symbol=BTC&count=99999999999999999999999", "count"),
    # Python's int() would take these; a query's count is plain ASCII digits.
    ("symbol=BTC&count=1_000", "count"),
    ("symbol=BTC&count=%D9%A5", "count"),  # ARABIC-INDIC DIGIT FIVE
    ("symbol=BTC&count=%205", "count"),
    ("symbol=BTC&count=5%0A", "count"),
    ("symbol=BTC&count=%2B5", "count"),
    ("symbol=BTC&time_start=yesterday", "time_start"),
    ("symbol=BTC&time_start=", "time_start"),
    ("symbol=BTC&time_start=2026-13-01", "time_start"),
    ("symbol=BTC&time_start=1e9", "time_start"),
    ("symbol=BTC&time_start=-1", "time_start"),
    ("symbol=BTC&time_start=%00", "time_start"),
    ("symbol=BTC&time_start=9999-12-31T23:59:59-23:59", "time_start"),
    ("symbol=BTC&time_start=0001-01-01T00:00:00%2B23:59", "time_start"),
    ("symbol=BTC&time_start=99999999999", "time_start"),  # after now, the default end
    ("symbol=BTC&time_end=" + "1" * 200, "time_end"),
    ("symbol=BTC&time_end=2026-11-26T03:00:00%2B24:00", "time_end"),
    ("symbol=BTC&time_start=2026-11-26T03:00:00Z&time_end=2026-11-26T02:59:59Z", "time_start"),
    ("symbol=BTC&time_start=1795662001&time_end=1795662000", "time_start"),
    ("symbol=BTC&convert=EUR", "convert"),
    ("symbol=BTC&convert=", "convert"),
    ("symbol=BTC&convert=USD", "convert"),
]


@pytest.mark.parametrize("query, parameter", BAD)
def test_bad_parameters_are_a_422_naming_the_parameter(client, history_repo, query, parameter):
    response = client.get(f"/api/v1/quotes/history?{query}")

    assert response.status_code == 422, response.get_data(as_text=True)
    assert parameter in response.get_json()["message"]
    assert history_repo.queries == []


def test_the_answer_is_the_contracts_body_and_never_calls_the_provider(client, provider):
    response = client.get("/api/v1/quotes/history?symbol=btc,nope&interval=15m&count=2")

    assert response.status_code == 200
    assert response.get_data(as_text=True) == (
        '{"data":{"BTC":{"id":1,"name":"Bitcoin","symbol":"BTC","quotes":['
        '{"timestamp":"2026-11-26T11:53:00.000Z","quote":{"USD":{"price":60001.5,'
        '"volume_24h":null,"market_cap":60001500.0,"last_updated":"2026-11-26T11:53:00.000Z"}}},'
        '{"timestamp":"2026-11-26T12:00:00.000Z","quote":{"USD":{"price":60000.5,'
        '"volume_24h":null,"market_cap":60000500.0,"last_updated":"2026-11-26T12:00:00.000Z"}}}]}},'
        '"unknown_symbols":["NOPE"]}'
    )
    assert provider.calls == []


def test_the_answer_matches_its_documented_schema(client):
    spec = client.get("/openapi.json").get_json()
    documented = resolve(spec["paths"]["/api/v1/quotes/history"]["get"]["responses"]["200"], spec)

    body = client.get("/api/v1/quotes/history?symbol=BTC&interval=all").get_json()

    OAS30Validator(documented["content"]["application/json"]["schema"]).validate(body)


def test_the_operation_is_documented_with_examples_and_every_parameter(client):
    spec = client.get("/openapi.json").get_json()
    operation = resolve(spec["paths"]["/api/v1/quotes/history"]["get"], spec)

    names = {p["name"] for p in operation["parameters"]}
    assert names == {"symbol", "time_start", "time_end", "interval", "count"}
    assert "`convert` parameter is a 422" in operation["description"]
    interval = next(p for p in operation["parameters"] if p["name"] == "interval")
    assert interval["schema"]["enum"] == ["5m", "15m", "30m", "1h", "2h", "6h", "12h", "1d", "7d", "all"]
    assert {"200", "404", "422", "503"} <= set(operation["responses"])
    assert "chart?symbol=BTC" in spec["info"]["description"]


def test_the_api_docs_link_the_chart_page_under_the_same_path_prefix(client):
    spec = client.get("/openapi.json").get_json()
    texts = [spec["info"]["description"]] + [tag.get("description", "") for tag in spec["tags"]]
    links = [href for text in texts for href in re.findall(r"\]\(([^)]*chart[^)]*)\)", text)]

    # Swagger UI and ReDoc render these links on /swagger-ui and /redoc, behind nginx under a prefix.
    pages = ("https://example.test/coinquote/swagger-ui", "https://example.test/coinquote/redoc")
    assert len(links) >= 2
    assert {urljoin(page, href) for page in pages for href in links} == {
        "https://example.test/coinquote/chart?symbol=BTC"}


def test_unreadable_history_is_a_503_with_retry_after(client, history_repo):
    history_repo.fail_with = StorageError("database down")

    response = client.get("/api/v1/quotes/history?symbol=BTC")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["message"] == "stored history cannot be read now"


def test_the_chart_page_and_its_assets_come_from_this_server(client):
    page = client.get("/chart?symbol=BTC")
    script = client.get("/chart-assets/vendor/uplot/uPlot.iife.min.js")

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert 'src="chart-assets/vendor/uplot/uPlot.iife.min.js"' in html
    assert "http://" not in html and "https://" not in html
    assert script.status_code == 200 and b"uPlot" in script.data
    assert "MIT" in (CHART_ASSETS / "vendor" / "uplot" / "LICENSE").read_text()


def test_the_prune_command_runs_the_configured_policy(app, history_repo):
    result = app.test_cli_runner().invoke(args=["history", "prune", "--batch-size", "50"])

    assert result.exit_code == 0, result.output
    assert [(now, policy.full_days, policy.hourly_days, size) for now, policy, size in history_repo.prunes] == [
        (NOW, 7, 90, 50)]


def test_coin_names_are_escaped_and_a_non_finite_amount_is_null(client, history_repo):
    from dataclasses import replace
    from decimal import Decimal

    odd = coin_quote("ODD", 7, "1.5", fetched_at=NOW, name='Quote "\\" Coin ü')
    history_repo.rows.append(("ODD", replace(odd, quote=replace(odd.quote, market_cap=Decimal("NaN"),
                                                                  volume_24h=Decimal("1E+10")))))

    response = client.get("/api/v1/quotes/history?symbol=ODD")

    coin = response.get_json()["data"]["ODD"]
    assert coin["name"] == 'Quote "\\" Coin ü'
    assert coin["quotes"][0]["quote"]["USD"]["market_cap"] is None
    assert coin["quotes"][0]["quote"]["USD"]["volume_24h"] == 1e10
