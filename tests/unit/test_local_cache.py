"""The in-process cache (no MEMCACHED_SERVERS) under gunicorn's threads, and the port over it."""

from __future__ import annotations

import random
import threading

from flask import Flask
from flask_caching import Cache

from src.adapters.cache.local import LocalCache
from src.adapters.cache.quote_cache import FlaskCachingQuoteCache
from src.adapters.cache.values import LOCAL_LIMITS, partition_of
from src.bootstrap import cache_backend
from src.domain.model import FetchFailure
from src.entrypoints.settings import Settings
from tests.fakes import coin_quote


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def default_cache() -> FlaskCachingQuoteCache:
    """The cache `create_app` builds without MEMCACHED_SERVERS."""
    settings = Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9")
    return FlaskCachingQuoteCache(cache_backend(settings))


def cache_on(backend: LocalCache) -> FlaskCachingQuoteCache:
    """The port over `backend` (one with a clock the test moves), through Flask-Caching."""
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "src.adapters.cache.local.LocalCache"})
    app.extensions["cache"][cache] = backend
    return FlaskCachingQuoteCache(cache)


def test_many_threads_on_thousands_of_keys_and_claims_never_fail_and_each_claim_has_one_winner():
    cache, threads, rounds = default_cache(), 16, 30
    quotes = {f"C{i}": coin_quote(f"C{i}", i + 1, "1") for i in range(3_000)}
    barrier, errors = threading.Barrier(threads), []
    wins: dict[tuple[int, str], list[str]] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(n)
        try:
            for r in range(rounds):
                symbols = rng.sample(list(quotes), 200)
                entries = {s: quotes[s] if rng.random() < 0.7 else None for s in symbols}
                cache.set_many(entries, "USD", 60)
                cache.get_many(rng.sample(list(quotes), 100), "USD")
                barrier.wait()
                claimed = cache.claim_fetches([f"R{r}A", f"R{r}B", f"R{r}C"], "USD", f"t{n}", 30)
                with lock:
                    for symbol in claimed:
                        wins.setdefault((r, symbol), []).append(f"t{n}")
        except Exception as exc:  # noqa: BLE001 - any failure in a thread fails the test
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert len(wins) == rounds * 3
    assert all(len(owners) == 1 for owners in wins.values()), wins


def test_negative_entries_never_evict_real_quotes():
    cache = default_cache()
    quotes = {f"C{i}": coin_quote(f"C{i}", i + 1, "1") for i in range(400)}
    cache.set_many(quotes, "USD", 60)

    for batch in range(30):  # junk symbols, as a scanner would send
        cache.set_many({f"JUNK{batch}X{i}": None for i in range(100)}, "USD", 60)

    assert cache.get_many(list(quotes), "USD") == quotes


def test_the_least_recently_used_entry_of_a_full_partition_goes_first():
    backend = LocalCache(limits={"quote": 3, "negative": 2, "other": 2}, classify=partition_of)
    backend.set_many({"quote:v1:USD:A": "a", "quote:v1:USD:B": "b", "quote:v1:USD:C": "c"}, 60)
    backend.get("quote:v1:USD:A")

    backend.set("quote:v1:USD:D", "d", 60)

    keys = ("quote:v1:USD:A", "quote:v1:USD:B", "quote:v1:USD:C", "quote:v1:USD:D")
    assert backend.get_many(*keys) == ["a", None, "c", "d"]


def test_claims_and_currencies_never_evict_quotes_and_junk_currencies_never_evict_claims():
    cache = cache_on(LocalCache(limits=LOCAL_LIMITS, classify=partition_of))
    cache.set_many({"BTC": coin_quote("BTC", 1, "1")}, "USD", 60)
    cache.claim_fetches(["ETH"], "USD", "owner", 30)

    for n in range(LOCAL_LIMITS["other"] + 10):
        cache.remember_currency(f"X{n}", False, 60)
    for n in range(LOCAL_LIMITS["claim"] - 1):
        cache.claim_fetches([f"S{n}"], "USD", "owner", 30)

    assert set(cache.get_many(["BTC"], "USD")) == {"BTC"}
    assert cache.fetch_states(["ETH"], "USD") == {"ETH": None}


def test_entries_expire_after_their_ttl():
    clock = Ticker()
    cache = cache_on(LocalCache(clock=clock))
    cache.set_many({"BTC": coin_quote("BTC", 1, "1"), "NOPE": None}, "USD", 60)

    clock.now += 59
    assert set(cache.get_many(["BTC", "NOPE"], "USD")) == {"BTC", "NOPE"}
    clock.now += 2

    assert cache.get_many(["BTC", "NOPE"], "USD") == {}


def test_a_fetch_claim_is_per_symbol_and_exclusive_until_released():
    cache = cache_on(LocalCache())

    assert cache.claim_fetches(["BTC", "ETH"], "USD", "one", 10) == ("BTC", "ETH")
    assert cache.claim_fetches(["ETH", "SOL", "BTC"], "USD", "two", 10) == ("SOL",)
    assert cache.fetch_states(["BTC", "SOL", "ADA"], "USD") == {"BTC": None, "SOL": None}

    cache.release_fetches(["BTC", "ETH"], "USD", "one")

    assert cache.fetch_states(["BTC", "ETH"], "USD") == {}
    assert cache.claim_fetches(["ETH", "BTC"], "USD", "two", 10) == ("ETH", "BTC")


def test_a_fetch_that_outlived_its_claim_never_releases_the_next_fetchers_claim():
    clock = Ticker()
    cache = cache_on(LocalCache(clock=clock))
    cache.claim_fetches(["BTC"], "USD", "slow", 10)
    clock.now += 11  # the slow fetch's claim expired ...
    assert cache.claim_fetches(["BTC"], "USD", "next", 10) == ("BTC",)  # ... and another took it

    cache.release_fetches(["BTC"], "USD", "slow")
    cache.release_fetches(["BTC"], "USD", "slow", FetchFailure("timeout", "too slow"))

    assert cache.fetch_states(["BTC"], "USD") == {"BTC": None}
    assert cache.claim_fetches(["BTC"], "USD", "third", 10) == ()


def test_a_failed_fetch_leaves_its_failure_for_the_waiters_until_it_expires():
    clock = Ticker()
    cache = cache_on(LocalCache(clock=clock))
    cache.claim_fetches(["BTC", "ETH"], "USD", "holder", 10)
    failure = FetchFailure("unavailable", "CoinMarketCap is unavailable", retry_after=30.0,
                           upstream_code=1008)

    cache.release_fetches(["BTC", "ETH"], "USD", "holder", failure, failure_ttl_seconds=5)

    assert cache.fetch_states(["BTC", "ETH"], "USD") == {"BTC": failure, "ETH": failure}
    assert cache.claim_fetches(["BTC"], "USD", "waiter", 10) == ()
    clock.now += 6
    assert cache.fetch_states(["BTC", "ETH"], "USD") == {}


def test_currencies_are_remembered_known_or_unknown_until_they_expire():
    clock = Ticker()
    cache = cache_on(LocalCache(clock=clock))
    assert cache.currency_known("EUR") is None

    cache.remember_currency("EUR", True, 60)
    cache.remember_currency("XYZ", False, 60)

    assert (cache.currency_known("EUR"), cache.currency_known("XYZ")) == (True, False)
    clock.now += 61
    assert (cache.currency_known("EUR"), cache.currency_known("XYZ")) == (None, None)


def test_the_in_process_cache_is_always_ready():
    default_cache().ping()
