"""CoinMarketCap's JSON read into domain values: malformed coins are skipped, the rest served."""

from __future__ import annotations

import copy
import logging
from decimal import Decimal

import pytest

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.coinmarketcap.wire import invalid_parameter
from src.domain.errors import ProviderError
from tests.unit.cmc_support import BASE, KEY, URL, FakeClock, body


@pytest.fixture
def provider():
    clock = FakeClock()
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock)


def shared_symbol_with_a_dead_coin(**dead_fields) -> dict:
    """`ETC`: a dead coin (listed first, as CoinMarketCap does) and Ethereum Classic."""
    payload = body("quotes_latest_v2_ETC_shared_symbol.json")
    payload["data"]["ETC"][0].update(dead_fields)
    return payload


MALFORMED = {
    "non-numeric max_supply": {"max_supply": "lots"},
    "null id": {"id": None},
    "null name": {"name": None},
    "numeric name": {"name": 12},
    "null slug": {"slug": None},
    "quote is a list": {"quote": [{"USD": {"price": 1}}]},
    "quote currency is a list": {"quote": {"USD": [1]}},
    "non-numeric price": {"quote": {"USD": {"price": "a lot"}}},
    "non-numeric market_cap": {"quote": {"USD": {"price": 1, "market_cap": {"x": 1}}}},
}


class TestMalformedCoins:
    @pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
    def test_a_malformed_coin_among_namesakes_is_skipped_and_the_others_served(self, provider, requests_mock,
                                                                             caplog, fields):
        requests_mock.get(URL, json=shared_symbol_with_a_dead_coin(**fields))

        with caplog.at_level(logging.WARNING, logger="src.adapters.coinmarketcap"):
            found = provider.latest_by_symbols(["ETC"], "USD")

        assert found["ETC"].coin.id == 1321
        assert found["ETC"].quote.price == Decimal("26.91")
        assert "skipped as malformed" in caplog.text

    def test_a_null_name_is_never_served_as_the_string_none(self, provider, requests_mock):
        payload = body("quotes_latest_v2_ETC_shared_symbol.json")
        for coin in payload["data"]["ETC"]:
            coin["is_active"] = 1
        payload["data"]["ETC"][0].update(name=None, cmc_rank=1)
        requests_mock.get(URL, json=payload)

        found = provider.latest_by_symbols(["ETC"], "USD")

        assert found["ETC"].coin.name == "Ethereum Classic"

    def test_a_malformed_coin_does_not_fail_the_other_symbols(self, provider, requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["data"]["ETH"].append({**copy.deepcopy(payload["data"]["ETH"][0]), "id": None})
        requests_mock.get(URL, json=payload)

        found = provider.latest_by_symbols(["BTC", "ETH"], "USD")

        assert (found["BTC"].coin.id, found["ETH"].coin.id) == (1, 1027)

    def test_a_symbol_whose_only_coin_is_malformed_is_a_provider_error_not_unknown(self, provider,
                                                                                   requests_mock):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["data"]["BTC"][0]["quote"] = ["not", "an", "object"]
        requests_mock.get(URL, json=payload)

        with pytest.raises(ProviderError, match="BTC"):
            provider.latest_by_symbols(["BTC"], "USD")

    def test_a_malformed_coin_in_a_convert_answer_is_skipped(self, provider, requests_mock):
        payload = body("quotes_latest_v2_id_convert_EUR.json")
        good = payload["data"]["1027"]
        payload["data"]["1"] = {**copy.deepcopy(good), "id": 1, "quote": {"EUR": {"price": "n/a"}}}
        requests_mock.get(URL, json=payload)

        converted = provider.latest_by_ids([1, 1027], "EUR")

        assert set(converted) == {1027}

    def test_a_convert_answer_whose_quote_is_a_list_is_skipped(self, provider, requests_mock):
        payload = body("quotes_latest_v2_id_convert_EUR.json")
        payload["data"]["1"] = {**copy.deepcopy(payload["data"]["1027"]), "id": 1, "quote": []}
        requests_mock.get(URL, json=payload)

        assert set(provider.latest_by_ids([1, 1027], "EUR")) == {1027}


class TestInvalidParameter:
    @pytest.mark.parametrize("message, parameter", [
        ('Invalid value for "symbol": "XYZ"', "symbol"),
        ('Invalid values for "symbol": "XYZ,ABC"', "symbol"),
        ('Invalid value for "convert": "XYZ"', "convert"),
        ('Invalid value for "id"', "id"),
        ('"symbol" is not allowed', None),
        ('"convert" must only contain "symbol" characters', None),
        ("Your plan is limited to 1 convert options", None),
        (None, None),
        (400, None),
    ])
    def test_reads_the_parameter_from_the_documented_message_forms_only(self, message, parameter):
        assert invalid_parameter(message) == parameter
