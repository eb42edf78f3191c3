"""The memcached backend's expiries: seconds relative to memcached's own clock, never a Unix time."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from src.adapters.cache.memcached import PymemcacheCache


class RecordingClient:
    """A pymemcache client that records the expiry of each write (no socket)."""

    def __init__(self) -> None:
        self.expiries: list[int] = []

    def set_multi(self, mapping, expire=0, noreply=None, flags=None):
        self.expiries.append(expire)
        return []

    def set(self, key, value, expire=0, noreply=None, flags=None):
        self.expiries.append(expire)
        return True

    def add(self, key, value, expire=0, noreply=None, flags=None):
        self.expiries.append(expire)
        return True


@pytest.fixture
def recorded():
    client = RecordingClient()
    return PymemcacheCache(client, key_prefix="coinquote:", default_timeout=300), client


@pytest.mark.parametrize("write", ["set_many", "set", "add"])
def test_an_entry_expires_in_seconds_from_now_on_memcacheds_clock_not_ours(recorded, write):
    cache, client = recorded
    if write == "set_many":
        cache.set_many({"quote:v1:USD:BTC": "{}"}, timeout=60)
    else:
        getattr(cache, write)("quote:v1:USD:BTC", "{}", timeout=60)

    # cachelib sent time.time() + 60: a memcached host a minute ahead expired it at once.
    assert client.expiries == [60]


def test_default_timedelta_and_forever_timeouts_stay_relative(recorded):
    cache, client = recorded

    cache.set("a", "1")
    cache.set("b", "1", timeout=timedelta(minutes=2))
    cache.set("c", "1", timeout=0)
    cache.set("d", "1", timeout=90 * 86_400)  # beyond 30 days memcached reads a Unix time

    assert client.expiries == [300, 120, 0, 30 * 86_400]
    assert max(client.expiries) < time.time() - 86_400 * 365  # none is a Unix time
