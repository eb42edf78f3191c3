"""The retrieval rules, proven with in-memory fakes of the three ports."""

from __future__ import annotations

import contextlib
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
from src.domain.model import FetchFailure, Source
from src.domain.service import QuoteService
from tests.fakes import (
    T0,
    FakeQuoteProvider,
    InMemoryQuoteCache,
    InMemoryQuoteRepository,
    coin_quote,
)

BTC = coin_quote("BTC", 1, "67250.12")
ETH = coin_quote("ETH", 1027, "3512.44")
SOL = coin_quote("SOL", 5426, "171.05")


@pytest.fixture
def provider():
    return FakeQuoteProvider({"BTC": BTC, "ETH": ETH, "SOL": SOL})


def make_service(provider, repo, cache, clock, **kwargs):
    return QuoteService(provider=provider, repository=repo, cache=cache, clock=clock,
                        cache_ttl_seconds=60, **kwargs)


@pytest.fixture
def service(provider, repo, cache, clock):
    return make_service(provider, repo, cache, clock)


class TestRules:
    def test_a_full_cache_hit_is_one_cache_read_and_nothing_else(self, service, provider, repo, cache):
        cache.put({"BTC": BTC, "ETH": ETH})

        answer = service.get_quotes(("BTC", "ETH"))

        assert {s: q.source for s, q in answer.quotes.items()} == {"BTC": Source.CACHE, "ETH": Source.CACHE}
        assert answer.quotes["BTC"].coin_quote == BTC
        assert cache.ops == ["get_many"]
        assert repo.reads == []
        assert provider.calls == []

    def test_database_hit_is_cached_again_with_the_ttl(self, service, provider, repo, cache):
        repo.rows.append(("BTC", BTC))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.DATABASE
        assert cache.sets == [({"BTC": BTC}, 60)]
        assert provider.calls == []
        assert service.get_quotes(("BTC",)).quotes["BTC"].source is Source.CACHE

    def test_a_database_hit_takes_no_claim_and_makes_no_call(self, service, provider, repo, cache):
        repo.rows.append(("BTC", BTC))

        service.get_quotes(("BTC",))

        assert "claim_fetches" not in cache.ops
        assert provider.calls == []

    def test_provider_answer_is_stored_then_cached(self, service, provider, repo, cache):
        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert provider.calls == [("symbols", ("BTC",), "USD")]
        assert repo.rows == [("BTC", BTC)]
        assert cache.sets == [({"BTC": BTC}, 60)]

    def test_quotes_and_unknown_symbols_are_cached_with_the_configured_ttl(self, provider, repo, cache, clock):
        service = QuoteService(provider=provider, repository=repo, cache=cache, clock=clock,
                               cache_ttl_seconds=17)

        service.get_quotes(("BTC", "NOPE"))

        assert cache.sets == [({"BTC": BTC, "NOPE": None}, 17)]

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
        assert answer.unconverted_symbols == ()
        assert provider.calls == []
        assert cache.ops == ["get_many"]

    def test_repeated_conversions_each_call_the_provider_but_base_quotes_stay_cached(self, service, provider):
        for _ in range(3):
            service.get_quotes(("BTC",), convert="EUR")

        assert [c[0] for c in provider.calls] == ["symbols", "ids", "ids", "ids"]

    def test_a_coin_missing_from_the_conversion_answer_is_reported_not_dropped(self, service, cache, provider):
        newcomer = coin_quote("NEW", 99999, "0.5")
        cache.put({"BTC": BTC, "NEW": newcomer})  # NEW is unknown to the provider's conversion

        answer = service.get_quotes(("BTC", "NEW"), convert="EUR")

        assert answer.quotes["BTC"].converted.currency == "EUR"
        assert answer.quotes["NEW"].converted is None
        assert answer.convert == "EUR"
        assert answer.unconverted_symbols == ("NEW",)


class TestCurrencyMemory:
    def test_an_unknown_currency_is_remembered_so_repeating_it_costs_no_call(self, service, provider, cache):
        with pytest.raises(InvalidCurrency):
            service.get_quotes(("BTC",), convert="XYZ")
        calls_after_first = len(provider.calls)

        for _ in range(3):
            with pytest.raises(InvalidCurrency):
                service.get_quotes(("BTC",), convert="XYZ")

        assert len(provider.calls) == calls_after_first
        assert cache.currencies["XYZ"][0] is False

    def test_a_remembered_unknown_currency_is_refused_before_any_other_work(self, service, provider, repo, cache):
        cache.remember_currency("XYZ", False, 3600)
        cache.ops.clear()

        with pytest.raises(InvalidCurrency, match="XYZ"):
            service.get_quotes(("BTC", "NOPE"), convert="XYZ")

        assert cache.ops == ["currency_known"]
        assert repo.reads == [] and provider.calls == []

    def test_unknown_currencies_are_forgotten_after_an_hour_and_known_ones_after_a_day(self, service, cache, clock):
        with pytest.raises(InvalidCurrency):
            service.get_quotes(("BTC",), convert="XYZ")
        service.get_quotes(("BTC",), convert="EUR")

        assert cache.currencies["XYZ"] == (False, clock.now() + timedelta(hours=1))
        assert cache.currencies["EUR"] == (True, clock.now() + timedelta(days=1))

    def test_an_unknown_currency_is_invalid_even_when_no_symbol_exists(self, service, provider):
        with pytest.raises(InvalidCurrency):
            service.get_quotes(("NOPE",), convert="XYZ")

        assert provider.calls == [("symbols", ("NOPE",), "USD"), ("ids", (1,), "XYZ")]

    def test_no_symbol_with_a_valid_currency_learns_it_once_then_answers_unknown_symbols(self, service, provider):
        for _ in range(2):
            with pytest.raises(UnknownSymbols):
                service.get_quotes(("NOPE",), convert="EUR")

        assert [c for c in provider.calls if c[0] == "ids"] == [("ids", (1,), "EUR")]

    def test_a_currency_known_valid_needs_no_probe_before_unknown_symbols(self, service, provider, cache):
        cache.remember_currency("EUR", True, 86400)

        with pytest.raises(UnknownSymbols):
            service.get_quotes(("NOPE",), convert="EUR")

        assert provider.calls == [("symbols", ("NOPE",), "USD")]

    def test_a_currency_known_valid_is_not_written_again(self, service, cache):
        cache.remember_currency("EUR", True, 86400)
        cache.ops.clear()

        service.get_quotes(("BTC",), convert="EUR")

        assert "remember_currency" not in cache.ops


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


def other_process_claims(cache, *symbols, owner="other", ttl=10):
    assert cache.claim_fetches(symbols, "USD", owner, ttl) == symbols


UNAVAILABLE = FetchFailure("unavailable", "CoinMarketCap is unavailable", retry_after=30.0)


class TestStampede:
    def test_waits_for_another_processs_fetch_and_serves_its_result_without_calling(self, service, provider,
                                                                                     cache, clock):
        other_process_claims(cache, "BTC")
        clock.schedule(0.5, lambda: (cache.set_many({"BTC": BTC}, "USD", 60),
                                     cache.release_fetches(["BTC"], "USD", "other")))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert provider.calls == []

    @pytest.mark.parametrize(("note", "raised"), [
        (UNAVAILABLE, ProviderUnavailable),
        (FetchFailure("timeout", "CoinMarketCap did not answer in time"), ProviderTimeout),
        (FetchFailure("error", "CoinMarketCap rejected our credentials", upstream_code=1001), ProviderError),
    ])
    def test_waiters_of_a_failed_fetch_get_the_holders_error_without_calling(self, service, provider, cache,
                                                                            clock, note, raised):
        other_process_claims(cache, "BTC")
        clock.schedule(0.5, lambda: cache.release_fetches(["BTC"], "USD", "other", note))

        with pytest.raises(raised) as error:
            service.get_quotes(("BTC",))

        assert type(error.value) is raised
        assert str(error.value) == note.message
        assert getattr(error.value, "retry_after", None) == note.retry_after
        assert error.value.upstream_code == note.upstream_code
        assert provider.calls == []

    def test_a_waiter_of_a_failed_fetch_serves_its_stale_stored_quote(self, provider, repo, cache, clock):
        repo.rows.append(("BTC", BTC))
        clock.advance(600)
        service = make_service(provider, repo, cache, clock, max_age=timedelta(seconds=300))
        other_process_claims(cache, "BTC")
        clock.schedule(0.5, lambda: cache.release_fetches(["BTC"], "USD", "other", UNAVAILABLE))

        served = service.get_quotes(("BTC",)).quotes["BTC"]

        assert (served.source, served.stale) == (Source.DATABASE, True)
        assert provider.calls == []

    def test_a_failed_fetch_leaves_its_error_for_the_requests_that_follow_it(self, repo, cache, clock):
        provider = FakeQuoteProvider(fail_with=ProviderUnavailable("CoinMarketCap is unavailable", 30))
        service = make_service(provider, repo, cache, clock)
        with pytest.raises(ProviderUnavailable):
            service.get_quotes(("BTC",))

        for _ in range(5):
            with pytest.raises(ProviderUnavailable) as error:
                service.get_quotes(("BTC",))

        assert error.value.retry_after == 30
        assert len(provider.calls) == 1
        clock.advance(5)
        with pytest.raises(ProviderUnavailable):
            service.get_quotes(("BTC",))
        assert len(provider.calls) == 2  # the note expires, and the next request tries again

    def test_a_vanished_claim_is_claimed_again_and_fetched_once(self, service, provider, cache, clock):
        other_process_claims(cache, "BTC")
        clock.schedule(0.5, lambda: cache.claims.clear())  # the holder crashed; its claim is gone

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert provider.calls == [("symbols", ("BTC",), "USD")]

    def test_only_one_waiter_of_a_vanished_claim_fetches_the_others_wait_for_it(self, service, provider,
                                                                                 cache, clock):
        other_process_claims(cache, "BTC", owner="crashed")

        def crash_then_another_waiter_claims_first():
            cache.claims.clear()
            other_process_claims(cache, "BTC", owner="faster-waiter")

        clock.schedule(0.5, crash_then_another_waiter_claims_first)
        clock.schedule(1.5, lambda: (cache.set_many({"BTC": BTC}, "USD", 60),
                                     cache.release_fetches(["BTC"], "USD", "faster-waiter")))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert provider.calls == []

    def test_overlapping_requests_share_the_claim_of_their_common_symbol(self, service, provider, cache, clock):
        other_process_claims(cache, "BTC")  # another request for BTC alone is fetching it
        clock.schedule(0.5, lambda: (cache.set_many({"BTC": BTC}, "USD", 60),
                                     cache.release_fetches(["BTC"], "USD", "other")))

        answer = service.get_quotes(("BTC", "ETH"))

        assert provider.calls == [("symbols", ("ETH",), "USD")]
        assert {s: q.source for s, q in answer.quotes.items()} == {"BTC": Source.CACHE, "ETH": Source.PROVIDER}

    def test_a_fetch_finished_elsewhere_just_before_our_claim_is_not_repeated(self, provider, repo, clock):
        class RacingCache(InMemoryQuoteCache):
            def claim_fetches(self, symbols, currency, owner, ttl_seconds):
                self.set_many({"BTC": BTC}, "USD", 60)  # the other process cached and released
                return super().claim_fetches(symbols, currency, owner, ttl_seconds)

        cache = RacingCache(clock=clock)
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.CACHE
        assert provider.calls == []
        assert cache.claims == {}

    def test_another_processs_result_past_the_max_age_is_not_served_as_fresh(
            self, provider, repo, cache, clock):
        service = make_service(provider, repo, cache, clock, max_age=timedelta(seconds=300))
        old = coin_quote("BTC", 1, "1.0", fetched_at=clock.now() - timedelta(seconds=336))
        other_process_claims(cache, "BTC")
        clock.schedule(0.5, lambda: (cache.set_many({"BTC": old}, "USD", 60),
                                     cache.release_fetches(["BTC"], "USD", "other")))

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].coin_quote.quote.price == BTC.quote.price
        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert not answer.quotes["BTC"].stale

    def test_a_claim_that_vanishes_as_the_deadline_ends_leaves_no_note_for_the_next_request(
            self, service, provider, cache, clock):
        other_process_claims(cache, "BTC", ttl=30)  # the holder dies mid-fetch
        clock.schedule(7.999, cache.claims.clear)  # its claim goes just before our deadline

        with pytest.raises(ProviderTimeout):
            service.get_quotes(("BTC",))
        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert len(provider.calls) == 1

    @pytest.mark.parametrize("error", [None, ProviderUnavailable("down"), RuntimeError("a bug")])
    def test_a_fetch_never_releases_a_claim_it_no_longer_owns(self, repo, cache, clock, error):
        provider = FakeQuoteProvider({"BTC": BTC}, fail_with=error, clock=clock, latency_seconds=2)
        service = make_service(provider, repo, cache, clock)

        def our_claim_is_lost_and_the_next_fetcher_claims():
            cache.claims.clear()  # evicted, or memcached restarted, while we fetch
            other_process_claims(cache, "BTC", owner="next")

        clock.schedule(1, our_claim_is_lost_and_the_next_fetcher_claims)

        with contextlib.suppress(ProviderUnavailable, RuntimeError):
            service.get_quotes(("BTC",))

        owner, note, _ = cache.claims[("USD", "BTC")]
        assert (owner, note) == ("next", None)

    def test_claims_are_released_after_a_fetch_and_noted_after_a_failure(self, repo, cache, clock):
        make_service(FakeQuoteProvider({"BTC": BTC}), repo, cache, clock).get_quotes(("BTC",))
        assert cache.claims == {}

        failing = make_service(FakeQuoteProvider(fail_with=ProviderUnavailable("down", 30)), repo, cache, clock)
        with pytest.raises(ProviderUnavailable):
            failing.get_quotes(("ETH",))

        owner, note, expires = cache.claims[("USD", "ETH")]
        assert note == FetchFailure("unavailable", "down", retry_after=30)
        assert expires == clock.now() + timedelta(seconds=5)

    def test_a_crashing_fetch_releases_its_claims_without_a_note(self, repo, cache, clock):
        service = make_service(FakeQuoteProvider(fail_with=RuntimeError("a bug")), repo, cache, clock)

        with pytest.raises(RuntimeError):
            service.get_quotes(("BTC",))

        assert cache.claims == {}

    def test_every_attempt_claims_under_its_own_owner_token(self, provider, repo, cache, clock):
        owners = []

        class RecordingCache(InMemoryQuoteCache):
            def claim_fetches(self, symbols, currency, owner, ttl_seconds):
                owners.append(owner)
                return super().claim_fetches(symbols, currency, owner, ttl_seconds)

        cache = RecordingCache(clock=clock)
        service = make_service(provider, repo, cache, clock)
        service.get_quotes(("BTC",))
        service.get_quotes(("ETH",))

        assert len(owners) == 2 and owners[0] != owners[1]

    def test_without_a_cache_everyone_fetches(self, provider, repo, clock):
        cache = InMemoryQuoteCache(clock=clock, down=True)
        service = make_service(provider, repo, cache, clock)

        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER


class TestDeadline:
    def test_waiting_for_another_fetch_never_exceeds_the_deadline(self, provider, repo, cache, clock):
        service = make_service(provider, repo, cache, clock, upstream_budget_seconds=3)
        other_process_claims(cache, "BTC", ttl=3600)  # a fetch that never ends

        with pytest.raises(ProviderTimeout):
            service.get_quotes(("BTC",))

        assert clock.now() - T0 == timedelta(seconds=3)
        assert provider.calls == []

    def test_a_stale_stored_quote_is_served_when_the_deadline_passes_while_waiting(self, provider, repo, cache,
                                                                                   clock):
        repo.rows.append(("BTC", BTC))
        clock.advance(600)
        start = clock.now()
        service = make_service(provider, repo, cache, clock, max_age=timedelta(seconds=300))
        other_process_claims(cache, "BTC", ttl=3600)

        served = service.get_quotes(("BTC",)).quotes["BTC"]

        assert served.stale is True
        assert clock.now() - start == timedelta(seconds=8)  # the default budget

    def test_a_call_after_waiting_gets_only_what_is_left_of_the_deadline(self, service, provider, cache, clock):
        other_process_claims(cache, "BTC")
        clock.schedule(2, lambda: cache.claims.clear())

        service.get_quotes(("BTC",))

        assert provider.budgets == [pytest.approx(6, abs=0.11)]

    def test_one_deadline_covers_the_fetch_and_the_conversion(self, repo, cache, clock):
        provider = FakeQuoteProvider({"BTC": BTC}, clock=clock, latency_seconds=5)
        service = make_service(provider, repo, cache, clock)

        with pytest.raises(ProviderTimeout):
            service.get_quotes(("BTC",), convert="EUR")

        assert provider.calls == [("symbols", ("BTC",), "USD"), ("ids", (1,), "EUR")]
        assert provider.deadlines[0] is provider.deadlines[1]
        assert provider.budgets == [8, 3]
        assert clock.now() - T0 == timedelta(seconds=8)

    def test_the_budget_is_a_service_setting(self, repo, cache, clock):
        provider = FakeQuoteProvider({"BTC": BTC})
        service = make_service(provider, repo, cache, clock, upstream_budget_seconds=2.5)

        service.get_quotes(("BTC",))

        assert provider.budgets == [2.5]

    def test_no_call_is_made_once_the_deadline_has_passed(self, provider, repo, cache, clock):
        service = make_service(provider, repo, cache, clock, upstream_budget_seconds=3)
        other_process_claims(cache, "BTC", ttl=3)  # expires just as our deadline passes

        with pytest.raises(ProviderTimeout):
            service.get_quotes(("BTC",))

        assert provider.calls == []


class TestFailureNotes:
    def test_a_note_never_outlives_the_failures_retry_after(self, repo, cache, clock):
        provider = FakeQuoteProvider({"BTC": BTC},
                                     fail_with=ProviderUnavailable("not calling it for a while", 1.5))
        service = make_service(provider, repo, cache, clock)
        with pytest.raises(ProviderUnavailable):
            service.get_quotes(("BTC",))

        clock.advance(1.6)
        provider.fail_with = None
        answer = service.get_quotes(("BTC",))

        assert answer.quotes["BTC"].source is Source.PROVIDER
        assert len(provider.calls) == 2

    def test_a_note_without_retry_after_lasts_the_configured_time(self, repo, cache, clock):
        provider = FakeQuoteProvider(fail_with=ProviderError("junk"))
        service = make_service(provider, repo, cache, clock, failure_note_seconds=3)
        with pytest.raises(ProviderError):
            service.get_quotes(("BTC",))

        _, _, expires = cache.claims[("USD", "BTC")]

        assert expires == clock.now() + timedelta(seconds=3)
