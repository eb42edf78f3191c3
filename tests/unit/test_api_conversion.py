"""Conversion through the HTTP API: an invalid currency is a 422 whatever the symbols, unknown
currencies cost no credits when repeated, and a coin without a conversion says so."""

from __future__ import annotations

from openapi_schema_validator import OAS30Validator

from tests.fakes import coin_quote
from tests.unit.test_openapi import resolve

NEWCOMER = coin_quote("NEW", 99999, "0.5")  # cached, but unknown to the conversion answer


def convert_calls(provider):
    return [c for c in provider.calls if c[0] == "ids"]


def test_an_unknown_currency_with_only_unknown_symbols_is_422_not_404(client):
    response = client.get("/api/v1/quotes?symbol=NOPE&convert=XYZ")

    assert response.status_code == 422
    assert "XYZ" in response.get_json()["message"]


def test_only_unknown_symbols_with_a_valid_currency_are_404(client):
    response = client.get("/api/v1/quotes?symbol=NOPE&convert=EUR")

    assert response.status_code == 404
    assert response.get_json()["errors"] == {"unknown_symbols": ["NOPE"]}


def test_a_repeated_unknown_currency_costs_no_upstream_call(client, provider):
    statuses = [client.get("/api/v1/quotes?symbol=ETH&convert=xyz").status_code for _ in range(5)]
    statuses += [client.get("/api/v1/quotes?symbol=NOPE&convert=XYZ").status_code for _ in range(3)]

    assert statuses == [422] * 8
    assert convert_calls(provider) == [("ids", (1027,), "XYZ")]


def test_a_coin_missing_from_the_conversion_answer_is_null_and_listed(client, cache):
    cache.put({"NEW": NEWCOMER})

    body = client.get("/api/v1/quotes?symbol=ETH,NEW&convert=EUR").get_json()

    assert body["data"]["NEW"]["quote"]["EUR"] is None
    assert body["data"]["NEW"]["quote"]["USD"]["price"] == 0.5
    assert body["data"]["ETH"]["quote"]["EUR"]["price"] > 0
    assert body["unconverted_symbols"] == ["NEW"]


def test_every_converted_answer_lists_its_unconverted_symbols_and_others_do_not(client):
    converted = client.get("/api/v1/quotes?symbol=ETH&convert=EUR").get_json()
    plain = client.get("/api/v1/quotes?symbol=ETH").get_json()

    assert converted["unconverted_symbols"] == []
    assert "unconverted_symbols" not in plain


def test_a_null_conversion_is_documented_and_matches_the_documented_schema(client, cache):
    cache.put({"NEW": NEWCOMER})
    spec = client.get("/openapi.json").get_json()
    documented = resolve(spec["paths"]["/api/v1/quotes"]["get"]["responses"]["200"], spec)
    schema = documented["content"]["application/json"]["schema"]

    body = client.get("/api/v1/quotes?symbol=ETH,NEW&convert=EUR").get_json()

    OAS30Validator(schema).validate(body)
    assert "null" in schema["properties"]["data"]["additionalProperties"]["properties"]["quote"]["description"]
    assert "unconverted_symbols" in schema["properties"]
