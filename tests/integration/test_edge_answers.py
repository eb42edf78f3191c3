"""Edge documents on real memcached through the wired app: a list's written when the app answers
it from its cache, on every server, and gone once one of its quotes is cached anew (a document is
never older than its quotes' entries; README "Deploy"); a coin's restored when it went missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from src.adapters.cache.keys import edge_list_key, edge_list_name
from src.entrypoints.wiring import wiring
from tests.fakes import coin_quote
from tests.servers import eventually

KEY = edge_list_key("coinquote:USD", edge_list_name(("BTC", "ETH")))  # the wired app's


def new_quote() -> dict:
    return {"BTC": coin_quote("BTC", 1, "99999", fetched_at=datetime.now(UTC))}


def test_an_answer_from_the_cache_becomes_the_lists_document_on_every_server(client,
                                                                             memcached_probe):
    assert client.get("/api/v1/quotes?symbol=BTC,ETH").status_code == 200  # fetched: not written
    assert memcached_probe.get_everywhere(KEY) == [None] * len(memcached_probe.clients)

    from_cache = client.get("/api/v1/quotes?symbol=btc,ETH,btc")

    assert {c["source"] for c in from_cache.get_json()["data"].values()} == {"cache"}
    assert memcached_probe.get_everywhere(KEY) == [from_cache.data] * len(memcached_probe.clients)
    left = [int(c.raw_command(f"mg {KEY} t".encode(), b"\r\n").split(b" t")[1])
            for c in memcached_probe.clients]
    max_age = int(from_cache.headers["Cache-Control"].removeprefix("public, max-age="))
    assert all(max_age - 1 <= n <= max_age + 1 for n in left)  # the quotes' remaining life


def test_a_quote_cached_anew_takes_every_list_document_away(wired_app, client, memcached_probe):
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    assert None not in memcached_probe.get_everywhere(KEY)
    cache = wiring(wired_app).cache

    # A re-cache of an older stored quote (an entry expired) changes nothing nginx could see...
    cache.set_many({"ETH": coin_quote("ETH", 1027, "3000", fetched_at=datetime.now(UTC)
                                      - timedelta(seconds=120))}, "USD", 60)
    assert None not in memcached_probe.get_everywhere(KEY)
    # ...a newly fetched one (a refresh round) takes the lists away, on every server.
    cache.set_many(new_quote(), "USD", 60)

    assert memcached_probe.get_everywhere(KEY) == [None] * len(memcached_probe.clients)
    client.get("/api/v1/quotes?symbol=BTC,ETH")  # the new quotes' list is written again
    assert None not in memcached_probe.get_everywhere(KEY)


def test_a_list_read_while_a_quote_is_cached_anew_takes_itself_away(wired_app, client,
                                                                   memcached_probe):
    client.get("/api/v1/quotes?symbol=BTC,ETH")  # cached
    services = wiring(wired_app)
    ticket = services.edge_answers.ticket(("BTC", "ETH"), None)  # as the view does, first
    answer = services.service.get_quotes(("BTC", "ETH"), None)  # the old quotes

    services.cache.set_many(new_quote(), "USD", 60)  # its lists are taken away before ours lands
    services.edge_answers.publish(ticket, answer, services.renderer.render(answer))

    assert memcached_probe.get_everywhere(KEY) == [None] * len(memcached_probe.clients)


def test_a_full_register_starts_afresh_rather_than_leave_a_list_it_cannot_take_away(
        wired_app, client, memcached_probe):
    register = "coinquote:USD:edge:v2:lists"
    for probe in memcached_probe.clients:  # just under memcached's 1 MB item limit
        probe.set(register, "x" * 1_040_000, noreply=False)

    client.get("/api/v1/quotes?symbol=BTC,ETH")
    client.get("/api/v1/quotes?symbol=BTC,ETH")

    assert None not in memcached_probe.get_everywhere(KEY)
    assert all(len(r) < 1000 for r in memcached_probe.get_everywhere(register))
    wiring(wired_app).cache.set_many(new_quote(), "USD", 60)
    assert eventually(lambda: memcached_probe.get_everywhere(KEY) == [None] * len(
        memcached_probe.clients))


ONE = "coinquote:USD:edge:v2:ETH"  # edge_key of the wired app's namespace


def test_a_coins_document_gone_from_memcached_comes_back_with_its_next_answer_from_the_cache(
        client, memcached_probe):
    """Evicted from a full memcached while its quote's entry stays, a coin's document used to
    stay away until the entry was cached again (up to CACHE_TTL_SECONDS of misses at the edge)."""
    client.get("/api/v1/quotes?symbol=ETH")  # fetched: cached, and its document written with it
    written = memcached_probe.get_everywhere(ONE)
    assert None not in written
    for probe in memcached_probe.clients:
        probe.delete(ONE, noreply=False)
    answers = []

    def restored() -> bool:  # within a second: one try a second per coin and process
        answers.append(client.get("/api/v1/quotes?symbol=eth"))
        return memcached_probe.get_everywhere(ONE) == written

    assert eventually(restored, timeout=5)
    assert {a.get_json()["data"]["ETH"]["source"] for a in answers} == {"cache"}
    assert answers[-1].data == written[0]  # the same bytes as the document written with the quote


def test_a_coins_answer_never_replaces_the_document_of_a_newer_quote(wired_app, client,
                                                                     memcached_probe):
    client.get("/api/v1/quotes?symbol=ETH")
    for probe in memcached_probe.clients:
        probe.delete(ONE, noreply=False)
    services = wiring(wired_app)
    ticket = first_ticket(services, "ETH")  # as the view does, first
    answer = services.service.get_quotes(("ETH",), None)  # the old quote
    newer = {"ETH": coin_quote("ETH", 1027, "4321", fetched_at=datetime.now(UTC))}

    services.cache.set_many(newer, "USD", 60)  # its document is written, a new epoch follows
    published = memcached_probe.get_everywhere(ONE)
    services.edge_answers.publish(ticket, answer, services.renderer.render(answer))

    assert b"4321" in published[0]
    assert memcached_probe.get_everywhere(ONE) == published


def first_ticket(services, symbol: str):
    """The next ticket for one coin (the request that fetched it took this second's try)."""
    tickets = []
    assert eventually(lambda: tickets.append(services.edge_answers.ticket((symbol,), None))
                      or tickets[-1] is not None)
    return tickets[-1]


def test_a_coin_now_unknown_takes_its_document_and_its_lists_away_for_good(wired_app, client,
                                                                         memcached_probe):
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    client.get("/api/v1/quotes?symbol=BTC,ETH")
    services = wiring(wired_app)
    services.cache.set_many({"NOPE9": None}, "USD", 60)  # never seen: no document, no change
    assert None not in memcached_probe.get_everywhere(KEY) + memcached_probe.get_everywhere(ONE)
    ticket = first_ticket(services, "ETH")
    answer = services.service.get_quotes(("ETH",), None)  # read while ETH was still known

    services.cache.set_many({"ETH": None}, "USD", 60)  # ETH is unknown now
    services.edge_answers.publish(ticket, answer, services.renderer.render(answer))

    nothing = [None] * len(memcached_probe.clients)
    assert memcached_probe.get_everywhere(ONE) == nothing  # not restored from the older answer
    assert memcached_probe.get_everywhere(KEY) == nothing  # nor any list holding ETH
