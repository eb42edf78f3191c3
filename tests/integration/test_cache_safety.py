"""Values under our memcached keys that we did not write: never run, never a 500, a miss."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from pymemcache.client.base import Client

from src.adapters.cache.keys import cache_key
from src.adapters.cache.values import encode_quote
from src.entrypoints.wiring import wiring
from tests.fakes import coin_quote

KEY = "coinquote:" + cache_key("USD", "BTC")


class Exploit:
    """What an attacker who can reach memcached stores: unpickling it runs a command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _quote_data(**changes) -> dict:
    data = json.loads(encode_quote(coin_quote("BTC", 1, "67000.5")))
    for path, value in changes.items():
        part, field = path.split("__")
        data[part][field] = value
    return data


def _text(data) -> bytes:
    return json.dumps(data).encode()


JUNK = {
    "pickle with flag 2 (int)": (b"42", 2),
    "unknown flag": (b'{"coin":{}}', 17),
    "garbage bytes": (b"\x00\x01\x02 not ours \xfe", 0),
    "invalid utf-8": (b"\xff\xfe\xfd", 0),
    "a pickle with flag 0": (pickle.dumps({"coin": 1}), 0),
    "not json": (b"hello", 0),
    "json of the wrong shape": (b"[1, 2, 3]", 0),
    "an object missing fields": (b'{"coin": {}, "quote": {}}', 0),
    "deeply nested json": (b"[" * 100_000 + b"]" * 100_000, 0),
    "NaN price": (_text(_quote_data(quote__price="NaN")), 0),
    "Infinity price": (_text(_quote_data(quote__price="Infinity")), 0),
    "non-numeric price": (_text(_quote_data(quote__price="abc")), 0),
    "a number where a string belongs": (_text(_quote_data(coin__name=5)), 0),
    "a string where an integer belongs": (_text(_quote_data(coin__id="1")), 0),
    "a float price": (_text(_quote_data(quote__price=1.5)), 0),
    "a time without offset": (_text(_quote_data(quote__last_updated="2026-11-26T03:00:00")), 0),
    "not a time": (_text(_quote_data(quote__last_updated="yesterday")), 0),
    "a null where a value is required": (_text(_quote_data(quote__price=None)), 0),
}


@pytest.fixture
def client(wired_app):
    """The wired app with BTC in the database: a miss in the cache is answered from there
    (or from the provider, should the service find it too old)."""
    with wired_app.app_context():
        wiring(wired_app).repository.add({"BTC": coin_quote("BTC", 1, "67000.5")})
    return wired_app.test_client()


def _unreadable() -> float:
    sample = REGISTRY.get_sample_value("coinquote_cache_errors_total", {"operation": "unreadable"})
    return sample or 0.0


def _write_everywhere(servers: list[str], value: bytes, flags: int) -> None:
    """As an attacker would: the raw base client, the key on every server."""
    for server in servers:
        host, _, port = server.rpartition(":")
        client = Client((host, int(port)), connect_timeout=2, timeout=2)
        assert client.set(KEY, value, expire=60, noreply=False, flags=flags)
        client.close()


def test_pickled_value_under_our_key_is_a_miss_and_never_runs(client, memcached_servers, tmp_path):
    marker = tmp_path / "pwned"
    _write_everywhere(memcached_servers, pickle.dumps(Exploit(str(marker))), flags=1)
    before = _unreadable()

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert not marker.exists()
    assert response.status_code == 200
    assert response.get_json()["data"]["BTC"]["source"] in {"database", "provider"}
    assert _unreadable() > before


@pytest.mark.parametrize(("value", "flags"), list(JUNK.values()), ids=list(JUNK))
def test_a_value_that_is_not_our_json_is_a_miss_not_an_error(client, memcached_servers, value,
                                                              flags):
    _write_everywhere(memcached_servers, value, flags)
    before = _unreadable()

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 200
    assert response.get_json()["data"]["BTC"]["source"] in {"database", "provider"}
    assert _unreadable() > before


def test_our_own_entry_is_still_served_from_the_cache(client, memcached_servers):
    # Fetched just now: an entry older than QUOTE_MAX_AGE_SECONDS is no longer served as fresh.
    fresh = coin_quote("BTC", 1, "67000.5", fetched_at=datetime.now(UTC))
    _write_everywhere(memcached_servers, encode_quote(fresh).encode(), 0)

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 200
    assert response.get_json()["data"]["BTC"]["source"] == "cache"


def test_junk_under_a_fetch_claim_key_blocks_no_fetch(memcached_servers, flush_memcached):
    from tests.integration.test_memcached_cache import make_cache

    cache = make_cache(memcached_servers)
    for server in memcached_servers:
        host, _, port = server.rpartition(":")
        key = "coinquote:" + cache_key("USD", "BTC", kind="fetch")
        Client((host, int(port))).set(key, b"junk", 60)

    assert cache.fetch_states(["BTC"], "USD") == {}
    assert cache.claim_fetches(["BTC"], "USD", "owner", 10) == ("BTC",)


def test_a_corrupt_amount_in_a_cached_quote_is_a_miss_not_a_500(client, memcached_servers):
    # Decimal("1,5") raises InvalidOperation, which is no ValueError: it used to escape as a 500.
    _write_everywhere(memcached_servers, _text(_quote_data(quote__price="1,5")), 0)

    response = client.get("/api/v1/quotes?symbol=BTC")

    assert response.status_code == 200
    assert response.get_json()["data"]["BTC"]["source"] in {"database", "provider"}
