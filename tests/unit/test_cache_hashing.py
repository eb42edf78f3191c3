"""The memcached client's key placement."""

from __future__ import annotations


def test_the_fast_hash_places_keys_exactly_like_pymemcache():
    from pymemcache.client.murmur3 import murmur3_32

    from src.adapters.cache.memcached import _murmur3

    keys = [f"127.0.0.1:1121{i}-coinquote:quote:v1:USD:SYN{n}"
            for i in range(3) for n in range(200)]

    assert [_murmur3(k, 7) for k in keys] == [murmur3_32(k, 7) for k in keys]
