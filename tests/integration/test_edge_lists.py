"""List documents on real memcached through the wired app: written when the app answers a list
from its cache, under the epoch every server holds, and unreachable once a quote is cached anew
(a document is never older than its quotes' entries; contract §6)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from src.adapters.cache_keys import edge_epoch_key, edge_list_digest, edge_list_key
from tests.fakes import coin_quote
from tests.servers import eventually

NAMESPACE = "coinquote:USD"  # the wired app's (Settings defaults)
DIGEST = edge_list_digest(("BTC", "ETH"))


def epochs(probe) -> list[str | None]:
    return [None if e is None else e.decode() for e in probe.get_everywhere(
        edge_epoch_key(NAMESPACE))]


def document(probe, epoch_by_server: list[str | None]) -> list[bytes | None]:
    """The list's document on each server, under that server's epoch."""
    return [client.get(edge_list_key(NAMESPACE, epoch, DIGEST)) if epoch else None
            for client, epoch in zip(probe.clients, epoch_by_server, strict=True)]


def test_an_answer_from_the_cache_becomes_the_lists_document_on_every_server(client,
                                                                             memcached_probe):
    assert client.get("/api/v1/quotes?symbol=BTC,ETH").status_code == 200  # fetched: not written
    time.sleep(0.2)  # the fetch's new epoch (written without a reply) has landed by now
    current = epochs(memcached_probe)
    assert None not in current
    assert document(memcached_probe, current) == [None] * len(current)

    from_cache = client.get("/api/v1/quotes?symbol=btc,ETH,btc")

    assert {c["source"] for c in from_cache.get_json()["data"].values()} == {"cache"}
    assert eventually(
        lambda: document(memcached_probe, current) == [from_cache.data] * len(current))
    left = [int(c.raw_command(f"mg {edge_list_key(NAMESPACE, e, DIGEST)} t".encode(), b"\r\n")
                .split(b" t")[1]) for c, e in zip(memcached_probe.clients, current, strict=True)]
    max_age = int(from_cache.headers["Cache-Control"].removeprefix("public, max-age="))
    assert all(max_age - 1 <= n <= max_age + 1 for n in left)  # the quotes' remaining life


def test_a_quote_cached_anew_leaves_every_older_list_document_unreachable(wired_app, client,
                                                                          memcached_probe):
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    time.sleep(0.2)  # the fetch's new epoch has landed
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    before = epochs(memcached_probe)
    assert eventually(lambda: None not in document(memcached_probe, before))
    cache = wired_app.extensions["coinquote"].cache

    # A re-cache of an older stored quote (an entry expired) changes nothing nginx could see...
    cache.set_many({"ETH": coin_quote("ETH", 1027, "3000", fetched_at=datetime.now(UTC)
                                      - timedelta(seconds=120))}, "USD", 60)
    time.sleep(0.2)  # noreply writes: what would have changed has landed by now
    assert epochs(memcached_probe) == before
    # ...a newly fetched one (the refresher's round) moves every server to a new epoch.
    cache.set_many({"BTC": coin_quote("BTC", 1, "99999", fetched_at=datetime.now(UTC))}, "USD", 60)

    assert eventually(lambda: all(a != b for a, b in zip(epochs(memcached_probe), before,
                                                     strict=True)))
    assert document(memcached_probe, epochs(memcached_probe)) == [None] * len(before)


def test_a_list_read_while_a_quote_is_cached_anew_is_written_where_nobody_looks(wired_app, client,
                                                                               memcached_probe):
    client.get("/api/v1/quotes?symbol=BTC,ETH")  # cached
    time.sleep(0.2)  # the fetch's new epoch has landed
    services = wired_app.extensions["coinquote"]
    ticket = services.edge_lists.ticket(("BTC", "ETH"), None)  # as the view does, first
    answer = services.service.get_quotes(("BTC", "ETH"), None)  # the old quotes

    services.cache.set_many({"BTC": coin_quote("BTC", 1, "99999", fetched_at=datetime.now(UTC))},
                            "USD", 60)
    assert eventually(lambda: epochs(memcached_probe) != list(ticket.epochs.values()))
    services.edge_lists.publish(ticket, answer, services.renderer.render(answer))

    time.sleep(0.2)
    assert document(memcached_probe, epochs(memcached_probe)) == [None] * len(ticket.epochs)
