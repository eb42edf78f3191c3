"""FlaskCachingQuoteCache over real memcached servers through the pymemcache backend."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask_caching import Cache
from pymemcache.client.base import Client

from src.adapters.memcached import FlaskCachingQuoteCache, cache_key
from src.domain.errors import StorageError
from src.entrypoints.settings import Settings
from tests.fakes import coin_quote
from tests.servers import Memcached, free_port


def make_cache(servers: list[str]) -> FlaskCachingQuoteCache:
    settings = Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9",
                        memcached_servers=tuple(servers))
    app = Flask(__name__)
    app.config.update(settings.to_flask_config())
    return FlaskCachingQuoteCache(Cache(app))


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

    holders = [memcached_probe.get_everywhere(f"coinquote:{cache_key('USD', f'K{i}')}") for i in range(40)]

    assert all(sum(v is not None for v in held) == 1 for held in holders)  # each key on one server
    per_server = [sum(held[n] is not None for held in holders) for n in range(len(memcached_servers))]
    assert all(count > 0 for count in per_server), per_server


def test_values_are_plain_json_text_not_pickles(cache, memcached_servers):
    cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 60)

    raw = [Client(tuple([s.rpartition(":")[0], int(s.rpartition(":")[2])])).get("coinquote:" + cache_key("USD", "BTC"))
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


def test_a_fetch_claim_is_exclusive_across_clients_until_released(memcached_servers, flush_memcached):
    one, other = make_cache(memcached_servers), make_cache(memcached_servers)

    assert one.claim_fetch(["BTC", "ETH"], "USD", 10) is True
    assert other.claim_fetch(["ETH", "BTC"], "USD", 10) is False  # same set, any order
    assert other.fetch_in_progress(["BTC", "ETH"], "USD") is True
    assert other.claim_fetch(["BTC"], "USD", 10) is True  # another set is another claim

    one.release_fetch(["BTC", "ETH"], "USD")

    assert other.fetch_in_progress(["BTC", "ETH"], "USD") is False
    assert other.claim_fetch(["BTC", "ETH"], "USD", 10) is True


def test_a_claim_expires_by_itself(cache):
    assert cache.claim_fetch(["BTC"], "USD", 2) is True
    assert cache.claim_fetch(["BTC"], "USD", 2) is False

    time.sleep(3.1)

    assert cache.claim_fetch(["BTC"], "USD", 2) is True


def test_with_the_cache_down_everyone_may_fetch():
    cache = make_cache([f"127.0.0.1:{free_port()}"])

    assert cache.claim_fetch(["BTC"], "USD", 10) is True
    assert cache.claim_fetch(["BTC"], "USD", 10) is True
    assert cache.fetch_in_progress(["BTC"], "USD") is False
