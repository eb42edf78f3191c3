"""Upstream figures and text beyond what PostgreSQL holds never cost a batch its history rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.adapters.sql.orm import QuoteRow
from src.adapters.sql.quotes import SqlQuoteRepository

BASE = "https://pro-api.example.test"
URL = BASE + "/v2/cryptocurrency/quotes/latest"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cmc"


def answer(**live_coin_fields) -> dict:
    """BTC and ETH as CoinMarketCap sends them, ETH's coin carrying `live_coin_fields`."""
    payload = json.loads((FIXTURES / "quotes_latest_v2_BTC_ETH.json").read_text())
    payload["data"]["ETH"][0].update(live_coin_fields)
    return payload


def fetch_and_store(engine, requests_mock, payload: dict) -> int:
    requests_mock.get(URL, json=payload)
    provider = CoinMarketCapProvider(base_url=BASE, api_key="k", sleep=lambda s: None)
    fetched = provider.latest_by_symbols(["BTC", "ETH"], "USD")
    with Session(engine) as session:
        SqlQuoteRepository(session).add(fetched)  # a StorageError or ValueError fails the test
        return session.scalar(select(func.count()).select_from(QuoteRow))


@pytest.mark.parametrize("fields", [
    {"cmc_rank": 2**31}, {"num_market_pairs": 2**40}, {"max_supply": "1e999999"},
    {"total_supply": "1e-20000"},
], ids=["rank beyond INTEGER", "pairs beyond INTEGER", "supply beyond NUMERIC",
        "supply below NUMERIC's scale"])
def test_a_figure_postgresql_cannot_hold_is_stored_as_unknown_with_every_row_kept(
        engine, requests_mock, fields):
    assert fetch_and_store(engine, requests_mock, answer(**fields)) == 2


def test_a_nul_in_a_coins_name_skips_that_coin_not_the_batchs_history(engine, requests_mock):
    payload = answer(name="Ether\x00eum")
    payload["data"]["ETH"].append({**payload["data"]["ETH"][0], "id": 99_999,
                                   "name": "Ethereum namesake", "is_active": 0})

    # Before: psycopg2 raised ValueError (not a database error) from the write: a 500.
    assert fetch_and_store(engine, requests_mock, payload) == 2
