"""Symbol and currency normalisation: the only gate between user input and every backend."""

from __future__ import annotations

import pytest

from src.domain.errors import InvalidCurrency, InvalidSymbol
from src.domain.model import normalise_currency, parse_symbols


class TestParseSymbols:
    def test_upper_cases_and_keeps_order(self):
        assert parse_symbols("btc,Eth,SOL") == ("BTC", "ETH", "SOL")

    def test_duplicates_collapse_case_insensitively(self):
        assert parse_symbols("BTC,btc,ETH,Btc") == ("BTC", "ETH")

    def test_digits_are_allowed(self):
        assert parse_symbols("1INCH,0x0") == ("1INCH", "0X0")

    def test_a_hundred_symbols_are_allowed(self):
        assert len(parse_symbols(",".join(f"S{i}" for i in range(100)))) == 100

    @pytest.mark.parametrize(
        "raw, fragment",
        [
            ("", "at least one"),
            ("   ", "at least one"),
            ("BTC,,ETH", "empty"),
            ("BTC,", "empty"),
            ("BTC ETH", "may contain only"),
            (" BTC", "may contain only"),
            ("BTC\r\nset x 0 0 1", "may contain only"),
            ("BTC\x00", "may contain only"),
            ("ВТС", "may contain only"),  # Cyrillic look-alikes
            ("ＢＴＣ", "may contain only"),  # full-width letters
            ("B'--", "may contain only"),
            ("BTC';DROP TABLE quotes;--", "longer than 20"),
            ("$PAC", "may contain only"),
            ("A" * 21, "longer than 20"),
            (",".join(f"S{i}" for i in range(101)), "at most 100"),
        ],
    )
    def test_rejects_bad_input_with_a_clear_message(self, raw, fragment):
        with pytest.raises(InvalidSymbol) as raised:
            parse_symbols(raw)

        assert fragment in str(raised.value)

    def test_message_shows_control_characters_escaped(self):
        with pytest.raises(InvalidSymbol) as raised:
            parse_symbols("BT\nC")

        assert "\n" not in str(raised.value)


class TestNormaliseCurrency:
    def test_upper_cases(self):
        assert normalise_currency("eur") == "EUR"

    @pytest.mark.parametrize("raw", ["", "EU R", "E-UR", "€", "X" * 21])
    def test_rejects_malformed_currencies(self, raw):
        with pytest.raises(InvalidCurrency) as raised:
            normalise_currency(raw)

        assert "convert" in str(raised.value)


# -- properties (hypothesis) --------------------------------------------------------------------

import re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from src.adapters.cache.keys import cache_key  # noqa: E402

VALID = re.compile(r"[A-Z0-9]{1,20}")
symbol_text = st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=300))
def test_any_text_is_either_rejected_or_safe(raw):
    try:
        parsed = parse_symbols(raw)
    except InvalidSymbol:
        return
    assert 1 <= len(parsed) <= 100
    assert len(set(parsed)) == len(parsed)
    assert all(VALID.fullmatch(symbol) for symbol in parsed)


@settings(max_examples=200, derandomize=True)
@given(st.lists(symbol_text, min_size=1, max_size=100))
def test_valid_lists_round_trip_upper_cased_and_distinct(symbols):
    parsed = parse_symbols(",".join(symbols))

    assert parsed == tuple(dict.fromkeys(s.upper() for s in symbols))


@settings(max_examples=300, derandomize=True)
@given(st.text(min_size=1, max_size=40).filter(lambda t: re.search(r"[^A-Za-z0-9,]", t)))
def test_anything_outside_letters_digits_and_commas_is_rejected(raw):
    with pytest.raises(InvalidSymbol):
        parse_symbols(raw)


@settings(max_examples=200, derandomize=True)
@given(st.lists(symbol_text, min_size=1, max_size=5))
def test_parsed_symbols_always_make_valid_memcached_keys(symbols):
    for symbol in parse_symbols(",".join(symbols)):
        key = "coinquote:" + cache_key("USD", symbol)
        assert len(key.encode()) <= 250
        assert re.fullmatch(r"[A-Za-z0-9:_-]+", key)

