"""FlaskCachingQuoteCache over real memcached servers through the pymemcache backend."""

from __future__ import annotations

import time

import pytest
from pymemcache.client.base import Client

from src.adapters.cache.keys import cache_key
from src.adapters.cache.quote_cache import FlaskCachingQuoteCache
from src.bootstrap import cache_backend
from src.domain.errors import StorageError
from src.domain.model import FetchFailure
from src.entrypoints.settings import Settings
from tests.fakes import coin_quote
from tests.servers import Memcached, free_port


def make_cache(servers: list[str]) -> FlaskCachingQuoteCache:
    settings = Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9",
                        memcached_servers=tuple(servers))
    return FlaskCachingQuoteCache(cache_backend(settings))


@pytest.fixture
def cache(memcached_servers, flush_memcached):
    return make_cache(memcached_servers)


def test_round_trip_of_many_quotes(cache):
    quotes = {f"C{i}": coin_quote(f"C{i}", i, f"{i}.000000000000000001") for i in range(1, 21)}

    cache.set_many(quotes, "USD", 60)
    found = cache.get_many(list(quotes) + ["MISSING"], "USD")

    assert found == quotes


def test_entries_are_per_currency(cache):
    cache.set_many({"BTC": coin_quote("BTC", 1, "1", currency="EUR")}, "EUR", 60)

    assert cache.get_many(["BTC"], "USD") == {}
    assert set(cache.get_many(["BTC"], "EUR")) == {"BTC"}


def test_entries_expire_after_their_ttl(cache):
    # cachelib sends expiry as an absolute second (int(now) + ttl): a 2 s TTL lives 1-2 s.
    cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 2)
    assert set(cache.get_many(["BTC"], "USD")) == {"BTC"}

    time.sleep(3.1)

    assert cache.get_many(["BTC"], "USD") == {}


def test_keys_are_sharded_across_both_servers(cache, memcached_servers, memcached_probe):
    assert len(memcached_servers) >= 2
    cache.set_many({f"K{i}": coin_quote(f"K{i}", i, "1") for i in range(40)}, "USD", 60)

    holders = [memcached_probe.get_everywhere(f"coinquote:{cache_key('USD', f'K{i}')}")
               for i in range(40)]

    assert all(sum(v is not None for v in held) == 1 for held in holders)  # each key on one server
    per_server = [sum(held[n] is not None for held in holders)
                  for n in range(len(memcached_servers))]
    assert all(count > 0 for count in per_server), per_server


def test_values_are_plain_json_text_not_pickles(cache, memcached_servers):
    cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 60)

    key = "coinquote:" + cache_key("USD", "BTC")
    raw = [Client((s.rpartition(":")[0], int(s.rpartition(":")[2]))).get(key)
           for s in memcached_servers]

    value = next(v for v in raw if v is not None)
    assert value.startswith(b'{"coin":')


def test_a_dead_server_means_misses_and_lost_writes_not_errors():
    cache = make_cache([f"127.0.0.1:{free_port()}"])

    cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 60)

    assert cache.get_many(["BTC"], "USD") == {}
    with pytest.raises(StorageError):
        cache.ping()


def test_cache_recovers_when_memcached_comes_back():
    server = Memcached()
    cache = make_cache([server.address])
    assert cache.get_many(["BTC"], "USD") == {}

    server.start()
    try:
        deadline = time.monotonic() + 15  # the client skips a dead server for a while
        while True:
            cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 60)
            if cache.get_many(["BTC"], "USD") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(cache.get_many(["BTC"], "USD")) == {"BTC"}
        cache.ping()
    finally:
        server.close()


def test_unknown_symbols_are_cached_as_negative_entries(cache):
    cache.set_many({"NOPE": None, "BTC": coin_quote("BTC", 1, "1")}, "USD", 60)

    found = cache.get_many(["NOPE", "BTC", "MISS"], "USD")

    assert found["NOPE"] is None and found["BTC"].coin.id == 1 and "MISS" not in found


def test_a_fetch_claim_is_per_symbol_and_exclusive_across_clients(memcached_servers,
                                                                   flush_memcached):
    one, other = make_cache(memcached_servers), make_cache(memcached_servers)

    assert one.claim_fetches(["BTC", "ETH"], "USD", "one", 10) == ("BTC", "ETH")
    assert other.claim_fetches(["ETH", "SOL", "BTC"], "USD", "other", 10) == ("SOL",)

    states = other.fetch_states(["BTC", "ETH", "SOL", "ADA"], "USD")
    assert states == {"BTC": None, "ETH": None, "SOL": None}


def test_released_claims_can_be_claimed_again(memcached_servers, flush_memcached):
    one, other = make_cache(memcached_servers), make_cache(memcached_servers)
    one.claim_fetches(["BTC", "ETH"], "USD", "one", 10)

    one.release_fetches(["BTC", "ETH"], "USD", "one")

    assert other.fetch_states(["BTC", "ETH"], "USD") == {}
    assert other.claim_fetches(["BTC", "ETH"], "USD", "other", 10) == ("BTC", "ETH")


def test_a_release_never_touches_another_owners_claim(memcached_servers, flush_memcached):
    late, next_fetcher = make_cache(memcached_servers), make_cache(memcached_servers)
    next_fetcher.claim_fetches(["BTC"], "USD", "next", 10)  # as if "late"'s claim had expired

    late.release_fetches(["BTC"], "USD", "late")
    late.release_fetches(["BTC"], "USD", "late", FetchFailure("timeout", "too slow"))

    assert late.fetch_states(["BTC"], "USD") == {"BTC": None}
    assert late.claim_fetches(["BTC"], "USD", "third", 10) == ()
    next_fetcher.release_fetches(["BTC"], "USD", "next")
    assert late.fetch_states(["BTC"], "USD") == {}


def test_a_failed_fetch_leaves_its_failure_for_the_waiters_until_it_expires(memcached_servers,
                                                                             flush_memcached):
    holder, waiter = make_cache(memcached_servers), make_cache(memcached_servers)
    holder.claim_fetches(["BTC", "ETH"], "USD", "holder", 10)
    failure = FetchFailure("unavailable", "CoinMarketCap is unavailable", retry_after=30.0,
                           upstream_code=1008)

    holder.release_fetches(["BTC", "ETH"], "USD", "holder", failure, failure_ttl_seconds=2)

    assert waiter.fetch_states(["BTC", "ETH"], "USD") == {"BTC": failure, "ETH": failure}
    assert waiter.claim_fetches(["BTC"], "USD", "waiter", 10) == ()
    time.sleep(3.1)
    assert waiter.fetch_states(["BTC", "ETH"], "USD") == {}
    assert waiter.claim_fetches(["BTC"], "USD", "waiter", 10) == ("BTC",)


def test_claims_of_many_symbols_live_each_on_one_server(cache, memcached_servers, memcached_probe):
    symbols = [f"K{i}" for i in range(40)]

    assert cache.claim_fetches(symbols, "USD", "owner", 10) == tuple(symbols)

    holders = [memcached_probe.get_everywhere(f"coinquote:fetch:v1:USD:{s}") for s in symbols]
    assert all(sum(v is not None for v in held) == 1 for held in holders)
    assert all(any(held[n] for held in holders) for n in range(len(memcached_servers)))


def test_a_claim_expires_by_itself(cache):
    assert cache.claim_fetches(["BTC"], "USD", "one", 2) == ("BTC",)
    assert cache.claim_fetches(["BTC"], "USD", "two", 2) == ()

    time.sleep(3.1)

    assert cache.claim_fetches(["BTC"], "USD", "two", 2) == ("BTC",)


def test_with_the_cache_down_everyone_may_fetch():
    cache = make_cache([f"127.0.0.1:{free_port()}"])

    assert cache.claim_fetches(["BTC", "ETH"], "USD", "one", 10) == ("BTC", "ETH")
    assert cache.claim_fetches(["BTC", "ETH"], "USD", "two", 10) == ("BTC", "ETH")
    assert cache.fetch_states(["BTC"], "USD") == {}
    cache.release_fetches(["BTC"], "USD", "one", FetchFailure("error", "bad answer"))


def test_currencies_are_remembered_known_or_unknown(cache):
    assert cache.currency_known("EUR") is None

    cache.remember_currency("EUR", True, 60)
    cache.remember_currency("XYZ", False, 60)

    assert (cache.currency_known("EUR"), cache.currency_known("XYZ")) == (True, False)


def test_with_the_cache_down_no_currency_is_remembered():
    cache = make_cache([f"127.0.0.1:{free_port()}"])

    cache.remember_currency("EUR", True, 60)

    assert cache.currency_known("EUR") is None


def test_many_threads_on_a_client_whose_server_keeps_failing_never_raise(memcached_servers):
    import sys
    import threading

    from src.adapters.cache.memcached import (
        MurmurRendezvousHash,
        ObservedHashClient,
        TextSerde,
        host_port,
    )

    # Servers fail and come back as fast as possible, threads switch as often as possible:
    # HashClient's own bookkeeping raised KeyError/RuntimeError here within a second or two.
    client = ObservedHashClient(
        [host_port(memcached_servers[0]), ("127.0.0.1", free_port())], hasher=MurmurRendezvousHash,
        serde=TextSerde(), connect_timeout=0.05, timeout=0.05, ignore_exc=True,
        default_noreply=False, use_pooling=True, retry_attempts=1, retry_timeout=0,
        dead_timeout=0.001,
    )
    errors: list[BaseException] = []
    until = time.monotonic() + 3

    def work() -> None:
        try:
            n = 0
            while time.monotonic() < until:
                n += 1
                client.get_many([f"k{n}-{j}" for j in range(20)])
                client.set_many({f"k{n}": "v"}, 10)
        except Exception as exc:  # noqa: BLE001 - any escape fails the test
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    assert errors == []


def test_a_claim_whose_add_reply_was_lost_is_still_ours_not_waited_on(memcached_servers,
                                                                     flush_memcached):
    from src.adapters.cache.values import encode_claim

    for server in memcached_servers:  # our add reached memcached; its reply timed out
        host, _, port = server.rpartition(":")
        Client((host, int(port))).set("coinquote:" + cache_key("USD", "BTC", kind="fetch"),
                                      encode_claim("me").encode(), 10)
    cache = make_cache(memcached_servers)

    assert cache.claim_fetches(["BTC", "ETH"], "USD", "me", 10) == ("BTC", "ETH")
    assert make_cache(memcached_servers).claim_fetches(["BTC"], "USD", "other", 10) == ()
