"""The retrieval rules, proven with in-memory fakes of the three ports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from src.domain.errors import (
    InvalidCurrency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    StorageError,
    UnknownSymbols,
)
from src.domain.model import Source
from src.domain.service import QuoteService
from tests.fakes import (
    T0,
    FakeQuoteProvider,
    FixedClock,
    InMemoryQuoteCache,
    InMemoryQuoteRepository,
    coin_quote,
)

BTC = coin_quote("BTC", 1, "67250.12")
ETH = coin_quote("ETH", 1027, "3512.44")
SOL = coin_quote("SOL", 5426, "171.05")


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def provider():
    return FakeQuoteProvider({"BTC": BTC, "ETH": ETH, "SOL": SOL})


@pytest.fixture
def repo():
    return InMemoryQuoteRepository()


@pytest.fixture
def cache(clock):
    return InMemoryQuoteCache(clock=clock)


def make_service(provider, repo, cache, clock, **kwargs):
    return QuoteService(provider=provider, repository=repo, cache=cache, clock=clock,
                        cache_ttl_seconds=60, **kwargs)


@pytest.fixture
def service(provider, repo, cache, clock):
    return make_service(provider, repo, cache, clock)


class TestRules:
    def test_cache_hit_touches_neither_database_nor_provider(self, service, provider, repo, cache):
        cache.put({"BTC": BTC})

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert answer.quotes["BTC"].coin_quote == BTC
        assert repo.reads == []
        assert provider.calls == []

    def test_database_hit_is_cached_again_with_the_ttl(self, service, provider, repo, cache):
        repo.rows.append(("BTC", BTC))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.DATABASE
        assert cache.sets == [({"BTC": BTC}, 60)]
        assert provider.calls == []
        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.CACHE

    def test_database_serves_the_newest_stored_quote(self, service, repo):
        newer = coin_quote("BTC", 1, "70000", fetched_at=T0 + timedelta(minutes=5))
        repo.rows.extend([("BTC", newer), ("BTC", BTC)])

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].coin_quote.quote.price == Decimal("70000")

    def test_provider_answer_is_stored_then_cached(self, service, provider, repo, cache):
        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert provider.calls == [("symbols", ("BTC",), "USD")]
        assert repo.rows == [("BTC", BTC)]
        assert cache.sets == [({"BTC": BTC}, 60)]

    def test_cached_quote_expires_after_the_ttl_and_comes_from_the_database(self, service, clock):
        service.get_quotes(("BTC",))
        clock.advance(59)
        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.CACHE

        clock.advance(2)

        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.DATABASE

    def test_mixed_request_costs_one_call_per_port_and_a_second_look_before_fetching(self, service, provider,
                                                                                     repo, cache):
        cache.put({"BTC": BTC})
        repo.rows.append(("ETH", ETH))

        answer = service.get_quotes(("BTC", "ETH", "SOL", "NOPE"))

        assert {s: q.source for s, q in answer.quotes.items()} == {
            "BTC": Source.CACHE, "ETH": Source.DATABASE, "SOL": Source.PROVIDER,
        }
        assert answer.unknown_symbols == ("NOPE",)
        assert cache.gets == [("BTC", "ETH", "SOL", "NOPE"), ("SOL", "NOPE")]  # the second after claiming
        assert repo.reads == [("ETH", "SOL", "NOPE")]
        assert provider.calls == [("symbols", ("SOL", "NOPE"), "USD")]
        assert repo.writes == [{"SOL": SOL}]
        assert [set(quotes) for quotes, _ in cache.sets] == [{"ETH"}, {"SOL", "NOPE"}]

    def test_answer_keeps_request_order(self, service, cache):
        cache.put({"SOL": SOL})

        answer = service.get_quotes(("ETH", "SOL", "BTC"))

        assert list(answer.quotes) == ["ETH", "SOL", "BTC"]

    def test_only_unknown_symbols_raise_unknown_symbols(self, service, repo, cache):
        with pytest.raises(UnknownSymbols) as raised:
            service.get_quotes(("NOPE", "NADA"))

        assert raised.value.symbols == ("NOPE", "NADA")
        assert repo.writes == []
        assert cache.sets == [({"NOPE": None, "NADA": None}, 60)]

    def test_unknown_symbols_are_listed_beside_known_ones(self, service):
        answer = service.get_quotes(("BTC", "NOPE"))

        assert list(answer.quotes) == ["BTC"]
        assert answer.unknown_symbols == ("NOPE",)

    def test_shared_symbol_is_stored_under_the_requested_symbol_with_the_coin_id(self, provider, repo, cache, clock):
        classic = coin_quote("ETC", 1321, "26.91", name="Ethereum Classic")
        provider.market["ETC"] = classic
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("ETC",))

        assert answer.quotes["ETC"].coin_quote.coin.id == 1321
        assert repo.rows == [("ETC", classic)]


class TestMaxAge:
    def test_without_max_age_an_old_stored_quote_is_served(self, service, repo, clock, provider):
        repo.rows.append(("BTC", BTC))
        clock.advance(86400 * 30)

        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.DATABASE
        assert provider.calls == []

    def test_stored_quote_older_than_max_age_counts_as_missing(self, provider, repo, cache, clock):
        repo.rows.append(("BTC", coin_quote("BTC", 1, "1.00")))
        clock.advance(301)
        service = make_service(provider, repo, cache, clock, max_age=timedelta(seconds=300))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert answer.quotes["BTC"].coin_quote.quote.price == Decimal("67250.12")

    def test_stored_quote_within_max_age_is_served(self, provider, repo, cache, clock):
        repo.rows.append(("BTC", BTC))
        clock.advance(299)
        service = make_service(provider, repo, cache, clock, max_age=timedelta(seconds=300))

        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.DATABASE
        assert provider.calls == []

    @pytest.mark.parametrize("error", [ProviderUnavailable("down", 30), ProviderTimeout("slow"),
                                       ProviderError("junk")])
    def test_stale_quote_is_served_when_the_provider_fails(self, repo, cache, clock, error):
        repo.rows.append(("BTC", BTC))
        clock.advance(600)
        service = make_service(FakeQuoteProvider(fail_with=error), repo, cache, clock,
                               max_age=timedelta(seconds=300))

        served = service.get_quotes(("BTC",)).quotes["BTC"]

        assert (served.source, served.stale) == (Source.DATABASE, True)
        assert cache.sets == []  # a stale quote is not cached as if it were fresh

    def test_provider_error_is_raised_when_a_symbol_has_no_stale_stand_in(self, repo, cache, clock):
        repo.rows.append(("BTC", BTC))
        clock.advance(600)
        service = make_service(FakeQuoteProvider(fail_with=ProviderUnavailable("down")), repo,
                               cache, clock, max_age=timedelta(seconds=300))

        with pytest.raises(ProviderUnavailable):
            service.get_quotes(("BTC", "ETH"))


class TestDegradation:
    def test_provider_failure_without_stored_quote_is_raised(self, repo, cache, clock):
        service = make_service(FakeQuoteProvider(fail_with=ProviderTimeout("slow")), repo, cache, clock)

        with pytest.raises(ProviderTimeout):
            service.get_quotes(("BTC",))

    def test_database_read_failure_falls_through_to_the_provider(self, provider, cache, clock):
        repo = InMemoryQuoteRepository(fail_with=StorageError("down"))
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER

    def test_database_write_failure_still_serves_and_caches(self, provider, cache, clock):
        repo = InMemoryQuoteRepository(fail_with=StorageError("down"))
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].coin_quote == BTC
        assert cache.sets == [({"BTC": BTC}, 60)]

    def test_cache_outage_still_answers_from_the_database(self, provider, repo, clock):
        cache = InMemoryQuoteCache(clock=clock, down=True)
        repo.rows.append(("BTC", BTC))
        service = make_service(provider, repo, cache, clock)

        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.DATABASE


class TestConversion:
    def test_converted_quote_is_never_cached_or_stored(self, service, repo, cache):
        answer = service.get_quotes(("BTC", "ETH"), convert="EUR")

        assert answer.quotes["BTC"].converted.currency == "EUR"
        written = [q for quotes in repo.writes for q in quotes.values()]
        written += [q for quotes, _ in cache.sets for q in quotes.values() if q is not None]
        assert written and all(q.quote.currency == "USD" for q in written)

    def test_one_provider_call_converts_every_coin(self, service, provider):
        answer = service.get_quotes(("BTC", "ETH", "SOL"), convert="EUR")

        convert_calls = [c for c in provider.calls if c[0] == "ids"]
        assert convert_calls == [("ids", (1, 1027, 5426), "EUR")]
        assert answer.quotes["ETH"].converted.price == Decimal("3512.44") / Decimal("1.08")

    def test_base_quotes_still_follow_the_rules_when_converting(self, service, cache, provider):
        cache.put({"BTC": BTC})

        answer = service.get_quotes(("BTC",), convert="EUR")

        assert answer.quotes["BTC"].source is Source.CACHE
        assert [c[0] for c in provider.calls] == ["ids"]

    def test_base_currency_costs_no_extra_call(self, service, cache, provider):
        cache.put({"BTC": BTC})

        answer = service.get_quotes(("BTC",), convert="USD")

        assert answer.quotes["BTC"].converted == BTC.quote
        assert provider.calls == []

    def test_unknown_currency_is_raised(self, service):
        with pytest.raises(InvalidCurrency):
            service.get_quotes(("BTC",), convert="XYZ")

    def test_repeated_conversions_each_call_the_provider_but_base_quotes_stay_cached(self, service, provider):
        for _ in range(3):
            service.get_quotes(("BTC",), convert="EUR")

        assert [c[0] for c in provider.calls] == ["symbols", "ids", "ids", "ids"]


class TestNegativeCache:
    def test_unknown_symbols_are_remembered_for_the_ttl(self, service, provider, repo):
        with pytest.raises(UnknownSymbols):
            service.get_quotes(("NOPE",))
        provider.calls.clear()
        repo.reads.clear()

        with pytest.raises(UnknownSymbols):
            service.get_quotes(("NOPE",))
        answer = service.get_quotes(("BTC", "NOPE"))

        assert answer.unknown_symbols == ("NOPE",)
        assert provider.calls == [("symbols", ("BTC",), "USD")]
        assert repo.reads == [("BTC",)]

    def test_a_negative_entry_expires(self, service, provider, clock):
        with pytest.raises(UnknownSymbols):
            service.get_quotes(("NOPE",))
        clock.advance(61)

        with pytest.raises(UnknownSymbols):
            service.get_quotes(("NOPE",))

        assert len(provider.calls) == 2


class ScriptedClock(FixedClock):
    """A clock whose sleeps let 'another process' act after a given number of them."""

    def __init__(self, after_sleeps: int, action) -> None:
        super().__init__()
        self.sleeps = 0
        self.after_sleeps = after_sleeps
        self.action = action

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.sleeps += 1
        if self.sleeps == self.after_sleeps:
            self.action()


class TestStampede:
    def test_waits_for_another_fetch_of_the_same_symbols_instead_of_calling(self, provider, repo):
        def other_process_finishes():
            cache.set_many({"BTC": BTC}, "USD", 60)
            cache.release_fetch(["BTC"], "USD")

        clock = ScriptedClock(3, other_process_finishes)
        cache = InMemoryQuoteCache(clock=clock)
        cache.claim_fetch(["BTC"], "USD", 10)
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert provider.calls == []
        assert clock.sleeps == 3

    def test_fetches_itself_when_the_other_fetch_ends_without_a_result(self, provider, repo):
        clock = ScriptedClock(2, lambda: cache.release_fetch(["BTC"], "USD"))
        cache = InMemoryQuoteCache(clock=clock)
        cache.claim_fetch(["BTC"], "USD", 10)
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert len(provider.calls) == 1

    def test_gives_up_waiting_after_the_wait_bound(self, provider, repo):
        clock = FixedClock()
        cache = InMemoryQuoteCache(clock=clock)
        cache.claim_fetch(["BTC"], "USD", 3600)  # a claim that never ends
        service = make_service(provider, repo, cache, clock, fetch_wait_seconds=2)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert clock.now() - T0 <= timedelta(seconds=2.2)

    def test_a_fetch_finished_elsewhere_just_before_our_claim_is_not_repeated(self, provider, repo, clock):
        class RacingCache(InMemoryQuoteCache):
            def claim_fetch(self, symbols, currency, ttl_seconds):
                self.set_many({"BTC": BTC}, "USD", 60)  # the other process cached and released
                return super().claim_fetch(symbols, currency, ttl_seconds)

        cache = RacingCache(clock=clock)
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert provider.calls == []
        assert cache.claims == {}

    def test_the_claim_is_released_after_a_fetch_and_after_a_failure(self, repo, cache, clock):
        ok = make_service(FakeQuoteProvider({"BTC": BTC}), repo, cache, clock)
        ok.get_quotes(("BTC",))
        assert cache.claims == {}

        failing = make_service(FakeQuoteProvider(fail_with=ProviderUnavailable("down")), repo, cache, clock)
        with pytest.raises(ProviderUnavailable):
            failing.get_quotes(("ETH",))
        assert cache.claims == {}
