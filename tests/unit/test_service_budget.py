"""The service on a credit budget (README "Freshness and credits"): freshness, reservations by purpose, stale answers
when the budget allows no call, CoinMarketCap's verdicts, conversions shared while in flight."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from limits.storage import MemoryStorage

from src.adapters.budget.board import LimitsBoard
from src.adapters.budget.governor import SharedCreditGovernor
from src.domain.errors import (
    BudgetSpent,
    InvalidCurrency,
    ProviderTimeout,
    ProviderUnavailable,
)
from src.domain.model import Purpose, Source
from src.domain.service import QuoteService
from tests.fakes import T0, FakeQuoteProvider, coin_quote, verdict

BTC = coin_quote("BTC", 1, "67250.12")
ETH = coin_quote("ETH", 1027, "3512.44")


@pytest.fixture
def provider():
    return FakeQuoteProvider({"BTC": BTC, "ETH": ETH})


def make_governor(clock, **options) -> SharedCreditGovernor:
    options.setdefault("daily_credits", 100)
    options.setdefault("calls_per_minute", 1000)
    return SharedCreditGovernor(board=LimitsBoard(MemoryStorage()), clock=clock, **options)


def make_service(provider, repo, cache, clock, governor, **kwargs) -> QuoteService:
    return QuoteService(provider=provider, repository=repo, cache=cache, clock=clock, governor=governor,
                        cache_ttl_seconds=60, max_age=timedelta(seconds=300), **kwargs)


def test_every_call_is_reserved_with_its_purpose(provider, repo, cache, clock):
    governor = make_governor(clock)
    service = make_service(provider, repo, cache, clock, governor)

    service.get_quotes(["BTC", "ETH"], convert="EUR")

    assert governor.usage()["today"]["by_purpose"] == {"request": 1, "refresh": 0, "convert": 1}


def test_a_stored_quote_older_than_the_max_age_counts_as_missing(provider, repo, cache, clock):
    repo.add({"BTC": coin_quote("BTC", 1, "60000", fetched_at=T0 - timedelta(seconds=301))})
    service = make_service(provider, repo, cache, clock, make_governor(clock))

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].source is Source.PROVIDER
    assert answer.quotes["BTC"].coin_quote.quote.price == Decimal("67250.12")


def test_a_cached_quote_older_than_the_max_age_counts_as_missing(provider, repo, cache, clock):
    service = make_service(provider, repo, cache, clock, make_governor(clock))
    cache.set_many({"BTC": coin_quote("BTC", 1, "60000", fetched_at=T0 - timedelta(seconds=301))}, "USD", 60)

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].source is Source.PROVIDER
    assert answer.quotes["BTC"].stale is False


def test_when_the_budget_allows_no_call_an_old_stored_quote_is_served_stale(provider, repo, cache, clock):
    governor = make_governor(clock, daily_credits=1)
    governor.reserve(Purpose.REQUEST, 1)
    repo.add({"BTC": coin_quote("BTC", 1, "60000", fetched_at=T0 - timedelta(seconds=301))})
    service = make_service(provider, repo, cache, clock, governor)

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].stale is True
    assert answer.quotes["BTC"].coin_quote.quote.price == Decimal("60000")
    assert provider.calls == []


def test_when_the_budget_allows_no_call_a_symbol_with_nothing_stored_is_budget_spent(provider, repo, cache,
                                                                                    clock):
    governor = make_governor(clock, daily_credits=1)
    governor.reserve(Purpose.REQUEST, 1)
    service = make_service(provider, repo, cache, clock, governor)

    with pytest.raises(BudgetSpent) as refused:
        service.get_quotes(["BTC"])

    assert "credit budget is spent" in str(refused.value)
    assert refused.value.retry_after > 0
    assert provider.calls == []


def test_a_conversion_beyond_its_share_is_budget_spent(provider, repo, cache, clock):
    governor = make_governor(clock, daily_credits=10, convert_credit_share=0.2)
    service = make_service(provider, repo, cache, clock, governor)
    service.get_quotes(["BTC"], convert="EUR")
    service.get_quotes(["BTC"], convert="EUR")

    with pytest.raises(BudgetSpent):
        service.get_quotes(["BTC"], convert="EUR")

    assert [c[0] for c in provider.calls] == ["symbols", "ids", "ids"]


@pytest.mark.parametrize("code", [1008, 1009, 1010, 1011])
def test_a_limit_verdict_from_coinmarketcap_stops_further_calls(provider, repo, cache, clock, code):
    governor = make_governor(clock)
    service = make_service(provider, repo, cache, clock, governor)
    provider.fail_with = verdict(code)
    with pytest.raises(ProviderUnavailable):
        service.get_quotes(["BTC"])
    provider.fail_with = None

    with pytest.raises(BudgetSpent) as refused:
        service.get_quotes(["ETH"])

    assert refused.value.upstream_code == code
    assert len(provider.calls) == 1


class SlowConversions(FakeQuoteProvider):
    """A conversion call takes `seconds` of real time, so that requests overlap in threads."""

    def __init__(self, *args, seconds: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = seconds

    def fetch_by_ids(self, coin_ids, currency, *, deadline=None):
        time.sleep(self.seconds)
        return super().fetch_by_ids(coin_ids, currency, deadline=deadline)


def test_identical_conversions_in_flight_at_once_share_one_call(repo, cache, clock):
    provider = SlowConversions({"BTC": BTC}, seconds=0.3)
    service = make_service(provider, repo, cache, clock, make_governor(clock))
    service.get_quotes(["BTC"], convert="EUR")  # BTC cached, EUR known
    provider.calls.clear()
    together, prices = threading.Barrier(6), []

    def convert() -> None:
        together.wait(5)
        prices.append(service.get_quotes(["BTC"], convert="EUR").quotes["BTC"].converted.price)

    threads = [threading.Thread(target=convert) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert provider.calls == [("ids", (1,), "EUR")]
    assert prices == [Decimal("67250.12") / Decimal("1.08")] * 6


def test_a_fetched_quote_is_cached_no_longer_than_it_stays_fresh(provider, repo, cache, clock):
    service = make_service(provider, repo, cache, clock, make_governor(clock))
    service.max_age = timedelta(seconds=5)

    service.get_quotes(["BTC"])

    assert cache.sets[-1][1] == 5


def test_a_stored_quote_is_cached_again_only_for_the_freshness_it_has_left(provider, repo, cache, clock):
    repo.add({"BTC": coin_quote("BTC", 1, "60000", fetched_at=T0 - timedelta(seconds=290))})
    service = make_service(provider, repo, cache, clock, make_governor(clock))

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].source is Source.DATABASE
    assert cache.sets[-1][1] == 10


def test_an_old_cached_quote_stands_in_stale_when_the_budget_is_spent_and_nothing_is_stored(
        provider, repo, cache, clock):
    governor = make_governor(clock, daily_credits=1)
    governor.reserve(Purpose.REQUEST, 1)
    service = make_service(provider, repo, cache, clock, governor)
    cache.set_many({"BTC": coin_quote("BTC", 1, "60000", fetched_at=T0 - timedelta(seconds=301))}, "USD", 60)

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].stale is True
    assert answer.quotes["BTC"].coin_quote.quote.price == Decimal("60000")
    assert answer.quotes["BTC"].source is Source.CACHE  # where it was read: not the database


def test_an_outage_does_not_drain_the_days_credits(provider, repo, cache, clock):
    governor = make_governor(clock, daily_credits=3)
    service = make_service(provider, repo, cache, clock, governor)
    provider.fail_with = ProviderUnavailable("CoinMarketCap is unavailable (HTTP 502)")
    for _ in range(10):
        clock.advance(10)  # past the failure note others would wait on
        with pytest.raises(ProviderUnavailable):
            service.get_quotes(["BTC"])
    provider.fail_with = None
    clock.advance(10)

    answer = service.get_quotes(["BTC"])

    assert answer.quotes["BTC"].source is Source.PROVIDER
    assert governor.usage()["today"]["by_purpose"]["request"] == 1


def test_a_call_that_timed_out_keeps_its_credits(provider, repo, cache, clock):
    governor = make_governor(clock)
    service = make_service(provider, repo, cache, clock, governor)
    provider.fail_with = ProviderTimeout("CoinMarketCap did not answer in time")

    with pytest.raises(ProviderTimeout):
        service.get_quotes(["BTC"])

    assert governor.usage()["today"]["by_purpose"]["request"] == 1


def test_a_conversion_to_an_unknown_currency_gives_its_credit_back(provider, repo, cache, clock):
    governor = make_governor(clock)
    service = make_service(provider, repo, cache, clock, governor)

    with pytest.raises(InvalidCurrency):
        service.get_quotes(["BTC"], convert="XYZ")

    # CoinMarketCap charges nothing for its 400 answer.
    assert governor.usage()["today"]["by_purpose"]["convert"] == 0
