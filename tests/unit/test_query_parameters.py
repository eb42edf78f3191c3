"""Query parameters as documented: one sent twice is merged (a list) or refused by name, never
silently cut; times in the documented pattern; HEAD with `convert` costs nothing. Driven by
the OpenAPI document, so a new parameter is covered."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

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
from tests.unit.conftest import BTC, ETH

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def provider():
    return FakeQuoteProvider({"BTC": BTC, "ETH": ETH})


@pytest.fixture
def client(settings, provider):
    history = InMemoryHistoryRepository(rows=[
        (symbol, coin_quote(symbol, coin_id, "100.5", fetched_at=NOW - timedelta(minutes=5)))
        for symbol, coin_id in (("BTC", 1), ("ETH", 1027))
    ])
    app = create_app(settings, provider=provider, repository=InMemoryQuoteRepository(),
                     cache=InMemoryQuoteCache(clock=FixedClock(NOW)), clock=FixedClock(NOW),
                     history_repository=history)
    app.test_client_class = NoServerErrorClient
    return app.test_client()


def documented_parameters(client):
    """(path, parameter) for every query parameter of every operation in the live document."""
    spec = client.get("/openapi.json").get_json()
    return [(path, parameter)
            for path, item in spec["paths"].items()
            for operation in item.values()
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "query"]


def a_valid_value(parameter) -> str:
    example = parameter["schema"].get("example", parameter.get("example"))
    return ",".join(example) if isinstance(example, list) else str(example)


def test_every_operation_with_parameters_is_covered(client):
    covered = {(path, p["name"]) for path, p in documented_parameters(client)}

    assert {("/api/v1/quotes", "symbol"), ("/api/v1/quotes", "convert"),
            ("/api/v1/quotes/history", "symbol"), ("/api/v1/quotes/history", "count"),
            ("/api/v1/quotes/history", "interval"), ("/api/v1/quotes/history", "time_start"),
            ("/api/v1/quotes/history", "time_end")} == covered


def test_a_scalar_parameter_sent_twice_is_a_422_naming_it(client):
    for path, parameter in documented_parameters(client):
        if parameter["schema"]["type"] == "array":
            continue
        name, value = parameter["name"], a_valid_value(parameter)

        response = client.get(f"{path}?symbol=BTC&{name}={value}&{name}={value}")

        assert response.status_code == 422, (path, name, response.get_json())
        body = response.get_json()
        assert list(body["errors"]["query"]) == [name]
        assert f"'{name}'" in body["message"] and "2 times" in body["message"]


@pytest.mark.parametrize("path", ["/api/v1/quotes", "/api/v1/quotes/history"])
def test_a_repeated_symbol_is_merged_in_order(client, path):
    response = client.get(f"{path}?symbol=ETH&symbol=btc")

    assert response.status_code == 200
    assert list(response.get_json()["data"]) == ["ETH", "BTC"]


def test_repeated_and_comma_separated_symbols_merge_and_duplicates_collapse(client):
    response = client.get("/api/v1/quotes?symbol=eth&symbol=BTC,ETH&symbol=NOPE,btc")

    body = response.get_json()
    assert list(body["data"]) == ["ETH", "BTC"]
    assert body["unknown_symbols"] == ["NOPE"]


def test_a_bad_value_in_a_repeated_symbol_is_a_422_naming_symbol(client):
    response = client.get("/api/v1/quotes?symbol=BTC&symbol=B$C")

    assert response.status_code == 422
    assert list(response.get_json()["errors"]["query"]) == ["symbol"]


def test_two_convert_currencies_are_refused_before_any_upstream_call(client, provider):
    response = client.get("/api/v1/quotes?symbol=BTC&convert=EUR&convert=NOPE")

    assert response.status_code == 422
    assert response.get_json()["errors"] == {
        "query": {"convert": ["convert was sent 2 times; send it once"]}}
    assert provider.calls == []


def test_head_with_convert_is_a_405_naming_get_and_costs_no_upstream_call(client, provider):
    response = client.head("/api/v1/quotes?symbol=BTC&convert=EUR")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.headers["Cache-Control"] == "no-store"
    assert provider.calls == []


def test_head_without_convert_is_answered_like_get(client):
    client.get("/api/v1/quotes?symbol=BTC")  # now cached

    response = client.head("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 200
    assert response.headers["ETag"] == client.get("/api/v1/quotes?symbol=BTC").headers["ETag"]
    assert response.get_data() == b""


@pytest.mark.parametrize("name", ["time_start", "time_end"])
def test_history_times_document_their_format_and_the_server_keeps_to_it(client, name):
    spec = client.get("/openapi.json").get_json()
    parameter = next(p for p in spec["paths"]["/api/v1/quotes/history"]["get"]["parameters"]
                     if p["name"] == name)
    pattern = re.compile(parameter["schema"]["pattern"])
    accepted = ["2026-11-26T03:00:00Z", "2026-11-26T03:00:00.25+01:00", "2026-11-26T03:00",
                "2026-11-26", "1795662000", "1795662000.5"]
    refused = ["", "2026-11-26 03:00:00", "2026-11-26T03:00:00.1234567Z", "2026-1126",
               "2026-W48", "2026-11-26t03:00:00z", "0999-01-01", "123456789012"]

    for value in accepted:
        assert pattern.fullmatch(value), value
        query = f"symbol=BTC&{name}={value}".replace("+", "%2B")
        response = client.get("/api/v1/quotes/history?" + query)
        assert response.status_code == 200 or "after" in response.get_json()["message"], value
    for value in refused:
        assert not pattern.fullmatch(value), value
        response = client.get(f"/api/v1/quotes/history?symbol=BTC&{name}={value}")
        assert response.status_code == 422, value
        assert list(response.get_json()["errors"]["query"]) == [name]
