"""The fast path's documents on real memcached: every server, the quote's lifetime, flag 0, and a
failing server skipped rather than paid for on every write."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from src.adapters.cache.edge_documents import EdgeDocuments
from src.adapters.cache.keys import edge_key as namespaced_edge_key
from src.entrypoints.wiring import wiring
from tests.fakes import coin_quote
from tests.servers import free_port

BTC = coin_quote("BTC", 1, "67250.12")
NAMESPACE = "coinquote:USD"  # the wired app's (Settings defaults)


def edge_key(symbol: str) -> str:
    return namespaced_edge_key(NAMESPACE, symbol)


def render(symbol, quote) -> str:
    return f'{{"symbol":"{symbol}","price":"{quote.quote.price}"}}'


def written(probe, key: str, timeout: float = 2.0) -> list[bytes | None]:
    """`key` on every server once all hold it (writes are noreply: no acknowledgement to wait
    for), or as they hold it when `timeout` ends."""
    deadline = time.monotonic() + timeout
    while None in (found := probe.get_everywhere(key)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_each_document_goes_to_every_server_as_plain_text(memcached_servers, memcached_probe,
                                                           flush_memcached):
    edge = EdgeDocuments(memcached_servers, render, namespace=NAMESPACE)
    edge.publish({"BTC": BTC}, ttl_seconds=60)

    found = written(memcached_probe, edge_key("BTC"))
    assert found == [b'{"symbol":"BTC","price":"67250.12"}'] * len(memcached_servers)
    for client in memcached_probe.clients:  # flag 0: what nginx's memcached module serves as is
        assert client.raw_command(f"mg {edge_key('BTC')} f".encode(), b"\r\n") == b"HD f0"


def test_a_document_expires_with_its_quotes_lifetime(memcached_servers, memcached_probe,
                                                     flush_memcached):
    edge = EdgeDocuments(memcached_servers, render, namespace=NAMESPACE)
    edge.publish({"BTC": BTC}, ttl_seconds=1)

    assert None not in written(memcached_probe, edge_key("BTC"))
    time.sleep(2.1)
    assert memcached_probe.get_everywhere(edge_key("BTC")) == [None] * len(memcached_servers)


def test_a_failing_server_is_skipped_for_a_while_and_the_others_still_written(
        memcached_servers, memcached_probe, flush_memcached, caplog):
    now = [100.0]
    closed = f"127.0.0.1:{free_port()}"
    edge = EdgeDocuments([closed, *memcached_servers], render, namespace=NAMESPACE,
                         dead_seconds=10,
                         clock=lambda: now[0])
    attempts = []
    original = edge.clients[closed].set_many

    def counted(*args, **kwargs):
        attempts.append(now[0])
        return original(*args, **kwargs)

    edge.clients[closed].set_many = counted  # third-party client: count what reaches it

    with caplog.at_level(logging.WARNING, logger="src.adapters.cache.edge_documents"):
        for step in range(5):  # 0, 3, 6, 9, 12 s
            edge.publish({"BTC": BTC}, ttl_seconds=60)
            now[0] += 3

    assert attempts == [100.0, 112.0]  # tried, skipped for 10 s, tried again
    assert len([r for r in caplog.records if closed in r.getMessage()]) == 2
    assert None not in written(memcached_probe, edge_key("BTC"))


def gone(probe, key: str, timeout: float = 2.0) -> list[bytes | None]:
    """`key` on every server once none holds it (deletes are noreply too), or as they hold it."""
    deadline = time.monotonic() + timeout
    while (found := probe.get_everywhere(key)) != [None] * len(found) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def remaining_seconds(probe, key: str) -> list[int]:
    """The remaining lifetime of `key` on each server (memcached's meta-get `t` flag)."""
    answers = [client.raw_command(f"mg {key} t".encode(), b"\r\n") for client in probe.clients]
    return [int(answer.split(b" t")[1]) for answer in answers]


def fetched_ago(seconds: float):
    return coin_quote("BTC", 1, "67250.12",
                      fetched_at=datetime.now(UTC) - timedelta(seconds=seconds))


def test_a_symbol_cached_as_unknown_loses_its_document(wired_app, memcached_probe):
    cache = wiring(wired_app).cache
    cache.set_many({"BTC": fetched_ago(0)}, "USD", 60)
    assert None not in written(memcached_probe, edge_key("BTC"))

    cache.set_many({"BTC": None}, "USD", 60)  # e.g. the refresher learnt BTC no longer exists

    assert gone(memcached_probe, edge_key("BTC")) == [None] * len(memcached_probe.clients)


def test_a_document_never_outlives_its_quotes_freshness_whoever_caches_it(wired_app,
                                                                          memcached_probe):
    # The refresher caches for CACHE_TTL_SECONDS whatever QUOTE_MAX_AGE_SECONDS (300 s) says;
    # the app would refetch such a quote after its max age, so nginx must stop serving it too.
    cache = wiring(wired_app).cache
    cache.set_many({"BTC": fetched_ago(295)}, "USD", 60)

    assert None not in written(memcached_probe, edge_key("BTC"))
    assert all(1 <= left <= 5 for left in remaining_seconds(memcached_probe, edge_key("BTC")))


def test_a_quote_with_under_a_second_of_freshness_leaves_no_document(wired_app, memcached_probe):
    cache = wiring(wired_app).cache
    cache.set_many({"BTC": fetched_ago(0)}, "USD", 60)
    assert None not in written(memcached_probe, edge_key("BTC"))

    cache.set_many({"BTC": fetched_ago(299.5)}, "USD", 60)  # as the refresher writes

    assert gone(memcached_probe, edge_key("BTC")) == [None] * len(memcached_probe.clients)
