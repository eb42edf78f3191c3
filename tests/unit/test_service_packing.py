"""Packed calls: a quotes call carries the stalest hot symbols in the room its credits pay for
anyway; a coin answered unreadable is a failed fetch of it (served stale), never unknown."""

from __future__ import annotations

from datetime import timedelta

import pytest

from src.domain.errors import ProviderError, UnknownSymbols
from src.domain.hot_set import HotSet
from src.domain.model import Purpose, Source
from src.domain.service import QuoteService
from tests.fakes import T0, FakeQuoteProvider, coin_quote
from tests.fakes_refresh import FakeCreditGovernor, InMemoryRequestLog

MAX_AGE = 300
HOT = [f"C{n}" for n in range(1, 41)]


@pytest.fixture
def provider():
    return FakeQuoteProvider({s: coin_quote(s, 1000 + i, "1.5") for i, s in enumerate(HOT)})


@pytest.fixture
def log():
    return InMemoryRequestLog()


@pytest.fixture
def governor():
    return FakeCreditGovernor()


def make_service(provider, repo, cache, clock, governor, log) -> QuoteService:
    hot_set = HotSet(log, repo, clock, "USD", window_seconds=900, memo_seconds=0)
    return QuoteService(provider=provider, repository=repo, cache=cache, clock=clock,
                        governor=governor, cache_ttl_seconds=60,
                        max_age=timedelta(seconds=MAX_AGE), hot_set=hot_set)


def stored(repo, symbols, seconds_ago):
    repo.add({s: coin_quote(s, 1000 + HOT.index(s), "1.0",
                            fetched_at=T0 - timedelta(seconds=seconds_ago)) for s in symbols})


def test_a_call_for_a_stale_symbol_carries_every_hot_symbol_due_for_a_refresh(
        provider, repo, cache, clock, governor, log):
    stored(repo, HOT, seconds_ago=MAX_AGE + 1)
    log.record(dict.fromkeys(HOT, T0))
    service = make_service(provider, repo, cache, clock, governor, log)

    answer = service.get_quotes(["C1"])

    assert len(provider.calls) == 1
    assert provider.calls[0][1][0] == "C1" and set(provider.calls[0][1]) == set(HOT)
    assert governor.reserved == [(Purpose.REQUEST, 1)]
    assert answer.quotes["C1"].source is Source.PROVIDER and list(answer.quotes) == ["C1"]
    # Everything it brought back is stored and cached: the rest costs no call.
    others = service.get_quotes(HOT[1:])
    assert len(provider.calls) == 1
    assert {q.source for q in others.quotes.values()} == {Source.CACHE}
    assert not any(q.stale for q in others.quotes.values())


def test_a_call_carries_the_stalest_first_up_to_the_hundred_coin_boundary(
        provider, repo, cache, clock, governor, log):
    many = [f"C{n}" for n in range(1, 41)]
    stored(repo, many, seconds_ago=MAX_AGE + 1)
    log.record(dict.fromkeys(many, T0))
    provider.namesakes = dict.fromkeys(many[1:], 3)  # 39 symbols of 3 coins: 117 coins
    service = make_service(provider, repo, cache, clock, governor, log)
    service.hot_set.fetched({}, provider.namesakes)  # as learned from earlier answers

    service.get_quotes(["C1"])

    carried = provider.calls[0][1][1:]
    assert len(carried) == 33  # 1 + 33 x 3 = 100 coins: still one credit
    assert governor.settled == [(Purpose.REQUEST, 1, 1)]


def test_hot_symbols_fresher_than_half_their_max_age_are_not_carried(
        provider, repo, cache, clock, governor, log):
    stored(repo, ["C1"], seconds_ago=MAX_AGE + 1)
    stored(repo, ["C2"], seconds_ago=MAX_AGE / 2 + 1)
    stored(repo, ["C3"], seconds_ago=MAX_AGE / 2 - 1)
    log.record(dict.fromkeys(["C1", "C2", "C3"], T0))
    service = make_service(provider, repo, cache, clock, governor, log)

    service.get_quotes(["C1"])

    assert provider.calls[0][1] == ("C1", "C2")


def test_a_call_for_never_seen_symbols_carries_only_quotes_already_past_the_max_age(
        provider, repo, cache, clock, governor, log):
    # Junk must not buy refreshes: what it carries, the next request would have paid for.
    stored(repo, ["C2"], seconds_ago=MAX_AGE + 1)
    stored(repo, ["C3"], seconds_ago=MAX_AGE - 1)  # due (past half), not yet stale
    log.record(dict.fromkeys(["C2", "C3"], T0))
    service = make_service(provider, repo, cache, clock, governor, log)

    with pytest.raises(UnknownSymbols):
        service.get_quotes(["NOPE1"])

    assert provider.calls[0][1] == ("NOPE1", "C2")  # C3 would be carried by a known symbol


def test_a_symbol_another_process_is_fetching_is_left_to_it(
        provider, repo, cache, clock, governor, log):
    stored(repo, HOT[:3], seconds_ago=MAX_AGE + 1)
    log.record(dict.fromkeys(HOT[:3], T0))
    cache.claim_fetches(["C2"], "USD", "another process", 30)
    service = make_service(provider, repo, cache, clock, governor, log)

    service.get_quotes(["C1"])

    assert provider.calls[0][1] == ("C1", "C3")
    assert cache.fetch_states(["C2", "C3"], "USD") == {"C2": None}  # ours released, theirs kept


def test_an_uncharged_answer_gives_the_reservation_back(provider, repo, cache, clock, governor,
                                                        log):
    service = make_service(provider, repo, cache, clock, governor, log)

    with pytest.raises(Exception):
        service.get_quotes(["NOPE1", "NOPE2"])

    assert governor.settled == [(Purpose.REQUEST, 1, 0)]


def test_a_coin_answered_unreadable_is_served_stale_not_called_unknown(
        provider, repo, cache, clock, governor, log):
    stored(repo, ["C1"], seconds_ago=MAX_AGE + 1)
    provider.unreadable = {"C1"}
    service = make_service(provider, repo, cache, clock, governor, log)

    answer = service.get_quotes(["C1", "C2"])

    assert answer.quotes["C1"].stale and answer.unknown_symbols == ()
    assert answer.quotes["C2"].source is Source.PROVIDER
    assert "C1" not in cache.get_many(["C1"], "USD")  # neither cached as unknown nor as fresh
    provider.unreadable = set()
    assert service.get_quotes(["C1"]).quotes["C1"].source is Source.PROVIDER


def test_a_coin_answered_unreadable_with_nothing_stored_is_an_upstream_error(
        provider, repo, cache, clock, governor, log):
    provider.unreadable = {"C1"}
    service = make_service(provider, repo, cache, clock, governor, log)

    with pytest.raises(ProviderError):
        service.get_quotes(["C1"])
    assert "C1" not in cache.get_many(["C1"], "USD")
