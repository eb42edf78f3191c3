"""The quotes query schema remembers successful loads by their raw arguments, never errors."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import ImmutableMultiDict

from src.entrypoints.http.quotes.schemas import QuoteQueryArgsSchema


def query(schema, *pairs):
    return MultiDictProxy(ImmutableMultiDict(pairs), schema)


def test_a_repeated_query_loads_to_an_equal_copy_and_is_remembered_once():
    schema = QuoteQueryArgsSchema()

    first = schema.load(query(schema, ("symbol", "btc,eth,BTC"), ("convert", "eur")))
    first["symbol"] = "changed by the caller"
    second = schema.load(query(schema, ("symbol", "btc,eth,BTC"), ("convert", "eur")))

    assert second == {"symbol": ("BTC", "ETH"), "convert": "EUR"}
    assert len(schema._loaded) == 1


def test_different_raw_arguments_are_loaded_on_their_own():
    schema = QuoteQueryArgsSchema()

    lower = schema.load(query(schema, ("symbol", "btc")))
    both = schema.load(query(schema, ("symbol", "btc"), ("convert", "USD")))

    assert (lower, both) == ({"symbol": ("BTC",)}, {"symbol": ("BTC",), "convert": "USD"})
    assert len(schema._loaded) == 2


@pytest.mark.parametrize("pairs", [(("symbol", "B$C"),), (("convert", "EUR"),),
                                   (("symbol", "BTC"), ("convert", "E R"))])
def test_an_invalid_query_is_refused_every_time_and_never_remembered(pairs):
    schema = QuoteQueryArgsSchema()

    for _ in range(2):
        with pytest.raises(ValidationError):
            schema.load(query(schema, *pairs))
    assert schema._loaded == {}


def test_through_the_app_a_repeated_bad_query_is_still_a_422(client):
    for _ in range(2):
        assert client.get("/api/v1/quotes?symbol=btc").status_code == 200
        assert client.get("/api/v1/quotes?symbol=B$C").status_code == 422
