"""CoinMarketCap's JSON read into domain values: malformed coins are skipped, the rest served."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.coinmarketcap.wire import invalid_parameter
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

    def test_a_symbol_whose_only_coin_is_malformed_is_left_out_and_fails_no_other_symbol(
            self, provider, requests_mock, caplog):
        payload = body("quotes_latest_v2_BTC_ETH.json")
        payload["data"]["BTC"][0]["quote"] = ["not", "an", "object"]
        requests_mock.get(URL, json=payload)

        with caplog.at_level(logging.WARNING, logger="src.adapters.coinmarketcap"):
            found = provider.latest_by_symbols(["BTC", "ETH"], "USD")

        assert set(found) == {"ETH"} and found["ETH"].coin.id == 1027
        assert "skipped as malformed" in caplog.text

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


class TestValuesBeyondWhatWeStore:
    @pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
    def test_a_time_at_the_edge_of_the_calendar_is_unknown_and_fails_nothing(self, provider,
                                                                             requests_mock, moment):
        payload = shared_symbol_with_a_dead_coin(last_updated=moment, date_added=moment)
        payload["data"]["ETC"][1]["quote"]["USD"]["last_updated"] = moment
        payload["status"]["timestamp"] = moment
        requests_mock.get(URL, json=payload)

        found = provider.latest_by_symbols(["ETC"], "USD")  # moved to UTC: beyond datetime

        assert found["ETC"].coin.id == 1321
        assert found["ETC"].quote.last_updated.year == 2026  # the coin's own time stands in

    def test_a_name_in_any_script_with_a_no_break_space_is_served(self, provider, requests_mock):
        payload = shared_symbol_with_a_dead_coin()
        payload["data"]["ETC"][1]["name"] = "Ethereum\u00a0Classic \u7ecf\u5178 \U0001f3f3\ufe0f\u200d"
        requests_mock.get(URL, json=payload)

        assert provider.latest_by_symbols(["ETC"], "USD")["ETC"].coin.id == 1321

    def test_an_answer_dated_in_the_future_counts_as_fetched_now(self, provider, requests_mock):
        payload = shared_symbol_with_a_dead_coin()
        payload["status"]["timestamp"] = "9999-12-31T23:59:00Z"  # + QUOTE_MAX_AGE: OverflowError
        requests_mock.get(URL, json=payload)
        before = datetime.now(UTC)

        fetched_at = provider.latest_by_symbols(["ETC"], "USD")["ETC"].fetched_at

        assert before <= fetched_at <= datetime.now(UTC)

    def test_figures_beyond_the_history_columns_are_unknown_not_a_lost_batch(self, provider,
                                                                            requests_mock):
        payload = shared_symbol_with_a_dead_coin()
        live = payload["data"]["ETC"][1]
        live.update(cmc_rank=2**31, num_market_pairs=-2**40, max_supply="1e999999",
                    circulating_supply="1e-200", total_supply="1" * 150)
        requests_mock.get(URL, json=payload)

        coin = provider.latest_by_symbols(["ETC"], "USD")["ETC"].coin

        assert coin.id == 1321
        assert (coin.cmc_rank, coin.num_market_pairs) == (None, None)
        assert (coin.max_supply, coin.circulating_supply, coin.total_supply) == (None, None, None)

    @pytest.mark.parametrize("fields", [{"name": "Ethereum\x00Classic"}, {"slug": "e\ntc"},
                                        {"name": "Ethereum\ud800"}, {"name": "E" * 256},
                                        {"symbol": "ETC" * 22}],
                             ids=["NUL in name", "newline in slug", "lone surrogate",
                                  "long name", "long symbol"])
    def test_text_postgresql_refuses_makes_the_coin_malformed(self, provider, requests_mock,
                                                              fields):
        payload = shared_symbol_with_a_dead_coin()
        payload["data"]["ETC"][1].update(fields)  # the live coin, chosen when well-formed
        requests_mock.get(URL, json=payload)

        assert provider.latest_by_symbols(["ETC"], "USD")["ETC"].coin.id == 646


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
