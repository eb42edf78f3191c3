"""The text of cache entries: our own JSON reads back exactly; anything else is UnreadableData."""

from __future__ import annotations

import json

import pytest

from src.adapters.cache.memcached import TextSerde
from src.adapters.cache.values import (
    NEGATIVE_ENTRY,
    UnreadableData,
    decode_claim,
    decode_currency,
    decode_quote,
    encode_claim,
    encode_currency,
    encode_failure,
    encode_quote,
)
from src.domain.model import FetchFailure
from tests.fakes import coin_quote

QUOTE = coin_quote("BTC", 1, "67000.000000000000000001")


def quote_text(**changes) -> str:
    data = json.loads(encode_quote(QUOTE))
    for path, value in changes.items():
        part, field = path.split("__")
        if value is ...:
            del data[part][field]
        else:
            data[part][field] = value
    return json.dumps(data)


def test_a_quote_and_a_negative_entry_read_back_exactly():
    assert decode_quote(encode_quote(QUOTE)) == QUOTE
    assert encode_quote(None) == NEGATIVE_ENTRY and decode_quote(NEGATIVE_ENTRY) is None


def test_an_entry_without_optional_fields_reads_with_their_defaults():
    decoded = decode_quote(quote_text(coin__max_supply=..., quote__volume_24h=...))

    assert decoded.coin.max_supply is None and decoded.quote.price == QUOTE.quote.price


JUNK = {
    "bytes": b'{"coin":{}}',
    "not json": "hello",
    "a list": "[1, 2]",
    "an empty object": "{}",
    "deeply nested": "[" * 100_000 + "]" * 100_000,
    "a huge integer": '{"coin": ' + "9" * 5_000 + "}",
    "NaN price": quote_text(quote__price="NaN"),
    "sNaN price": quote_text(quote__price="sNaN"),
    "Infinity price": quote_text(quote__price="Infinity"),
    "-Infinity supply": quote_text(coin__max_supply="-Infinity"),
    "non-numeric price": quote_text(quote__price="abc"),
    "a JSON NaN price": quote_text(quote__price=float("nan")),
    "a float price": quote_text(quote__price=1.5),
    "a price of a thousand digits": quote_text(quote__price="1" * 1_000),
    "a missing price": quote_text(quote__price=...),
    "a null price": quote_text(quote__price=None),
    "a number as name": quote_text(coin__name=5),
    "a string id": quote_text(coin__id="1"),
    "a boolean id": quote_text(coin__id=True),
    "an integer for is_active": quote_text(coin__is_active=1),
    "a list as coin": json.dumps({**json.loads(encode_quote(QUOTE)), "coin": []}),
    "a time without offset": quote_text(quote__last_updated="2026-11-26T03:00:00"),
    "not a time": quote_text(quote__last_updated="yesterday"),
    "a number as time": quote_text(coin__date_added=1_700_000_000),
}


@pytest.mark.parametrize("text", list(JUNK.values()), ids=list(JUNK))
def test_anything_but_our_quote_json_is_unreadable(text):
    with pytest.raises(UnreadableData):
        decode_quote(text)


def test_a_claim_reads_as_in_progress_and_a_failure_note_as_its_failure():
    failure = FetchFailure("unavailable", "CoinMarketCap is unavailable", retry_after=30.0,
                           upstream_code=1008)

    assert decode_claim(encode_claim("owner-1")) is None
    assert decode_claim(encode_failure("owner-1", failure)) == failure
    bare = FetchFailure("error", "bad")
    assert decode_claim(encode_failure("o", bare)) == bare


def test_a_failure_note_waiting_weeks_reads_back_capped_at_a_day_not_as_junk():
    monthly_quota = FetchFailure("unavailable", "CoinMarketCap credits are used up",
                                 retry_after=20 * 86_400.0, upstream_code=1010)

    assert decode_claim(encode_failure("holder", monthly_quota)) == FetchFailure(
        "unavailable", "CoinMarketCap credits are used up", retry_after=86_400.0,
        upstream_code=1010)


@pytest.mark.parametrize("text", [
    "1", "[]", "{}", '{"owner": 1}', '{"owner": "o", "failure": []}',
    '{"owner": "o", "failure": {"kind": "boom", "message": "m"}}',
    '{"owner": "o", "failure": {"kind": "error", "message": 1}}',
    '{"owner": "o", "failure": {"kind": "error", "message": "m", "retry_after": Infinity}}',
    '{"owner": "o", "failure": {"kind": "error", "message": "m", "retry_after": NaN}}',
    '{"owner": "o", "failure": {"kind": "error", "message": "m", "retry_after": "30"}}',
    '{"owner": "o", "failure": {"kind": "error", "message": "m", "upstream_code": "1008"}}',
])
def test_anything_but_our_claim_json_is_unreadable(text):
    with pytest.raises(UnreadableData):
        decode_claim(text)


def test_currencies_read_back_and_nothing_else_does():
    assert decode_currency(encode_currency(True)) is True
    assert decode_currency(encode_currency(False)) is False
    with pytest.raises(UnreadableData):
        decode_currency('{"currency":"yes"}')


def test_the_memcached_serde_writes_text_with_flag_0_and_reads_nothing_else():
    serde = TextSerde()

    assert serde.serialize("k", "é") == ("é".encode(), 0)
    assert serde.deserialize("k", "é".encode(), 0) == "é"
    assert serde.deserialize("k", b"\x80\x04K*.", 1) is None  # a pickle of 42
    assert serde.deserialize("k", b"42", 2) is None
    assert serde.deserialize("k", b"\xff\xfe", 0) is None
    with pytest.raises(TypeError):
        serde.serialize("k", {"not": "text"})
