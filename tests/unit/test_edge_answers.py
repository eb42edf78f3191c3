"""Which answers become edge documents (README "Deploy"): only what the app would serve from its
cache, never past a quote's entry or freshness, and bounded against a flood of distinct lists."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

from limits.storage import MemoryStorage

from src.adapters.cache.edge_answers import EdgeAnswers
from src.adapters.cache.keys import edge_list_name
from src.domain.model import QuoteAnswer, ServedQuote, Source
from tests.fakes import T0, coin_quote

NOW = T0 + timedelta(seconds=100)  # quotes fetched at T0 are 100 s old
MAX_AGE = 300


class RecordingDocuments:
    """Stands in for EdgeDocuments: the epochs it hands out and the documents it was given."""

    def __init__(self) -> None:
        self.written: list[tuple[dict, str, str, int]] = []
        self.epoch = "ab12"

    def epochs(self) -> dict[str, str]:
        return {"m1:11211": self.epoch}

    def publish_list(self, epochs, name, body, expire) -> None:
        self.written.append((epochs, name, body, expire))

    def restore(self, epochs, symbol, body, expire) -> None:
        self.written.append((epochs, f"restored {symbol}", body, expire))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def cached(symbol: str, coin_id: int, *, left: float = 40, stale: bool = False,
           source: Source = Source.CACHE) -> ServedQuote:
    quote = replace(coin_quote(symbol, coin_id, "1.5"), cached_until=NOW + timedelta(seconds=left))
    return ServedQuote(quote, source, stale=stale)


def lists(documents=None, **kwargs) -> tuple[EdgeAnswers, RecordingDocuments]:
    """Rewrites at once unless the test says otherwise (`rewrite_seconds`)."""
    documents = documents or RecordingDocuments()
    kwargs.setdefault("rewrite_seconds", 0)
    return EdgeAnswers(documents, max_age_seconds=MAX_AGE, now=NOW.timestamp, **kwargs), documents


def answer(**quotes: ServedQuote) -> QuoteAnswer:
    return QuoteAnswer(quotes=dict(quotes))


def test_an_all_cache_answer_is_written_under_the_epochs_read_before_it_for_its_shortest_life():
    edge, documents = lists()
    ticket = edge.ticket(("BTC", "ETH"), None)

    edge.publish(ticket, answer(BTC=cached("BTC", 1, left=40.7), ETH=cached("ETH", 2, left=12.9)),
                 "body")

    assert documents.written == [({"m1:11211": "ab12"}, edge_list_name(("BTC", "ETH")),
                                  "body", 12)]


def test_a_document_never_outlives_a_quotes_freshness():
    edge, documents = lists()
    ticket = edge.ticket(("BTC", "ETH"), None)
    aged = replace(coin_quote("ETH", 2, "2", fetched_at=NOW - timedelta(seconds=MAX_AGE - 5)),
                   cached_until=NOW + timedelta(seconds=50))

    edge.publish(ticket, answer(BTC=cached("BTC", 1), ETH=ServedQuote(aged, Source.CACHE)), "b")

    assert [expire for *_, expire in documents.written] == [5]


def test_what_the_edge_must_never_serve_is_never_written():
    edge, documents = lists()
    never = {
        "a stale quote": answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2, stale=True)),
        "a quote from the database": answer(BTC=cached("BTC", 1),
                                            ETH=cached("ETH", 2, source=Source.DATABASE)),
        "a fresh fetch": answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2, source=Source.PROVIDER)),
        "an unknown symbol": QuoteAnswer(quotes={"BTC": cached("BTC", 1)},
                                         unknown_symbols=("ETH",)),
        "an entry about to expire": answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2, left=0.9)),
        "an entry without its expiry": answer(
            BTC=cached("BTC", 1), ETH=ServedQuote(coin_quote("ETH", 2, "2"), Source.CACHE)),
    }
    for why, refused in never.items():
        edge.publish(edge.ticket(("BTC", "ETH"), None), refused, "b")
        assert documents.written == [], why


def test_conversions_and_a_cache_without_memcached_get_no_ticket():
    edge, _ = lists()

    assert edge.ticket(("BTC", "ETH"), "EUR") is None
    assert edge.ticket(("BTC",), "EUR") is None
    assert EdgeAnswers(None, max_age_seconds=MAX_AGE).ticket(("BTC", "ETH"), None) is None


def test_one_coins_answer_from_the_cache_restores_its_document_where_none_is():
    """Written with its quote; an answer reaching the app means it went missing (evicted)."""
    edge, documents = lists()

    edge.publish(edge.ticket(("BTC",), None), answer(BTC=cached("BTC", 1, left=30.5)), "one")
    edge.publish(edge.ticket(("BTC",), None), answer(BTC=cached("BTC", 1, stale=True)), "stale")

    assert documents.written == [({"m1:11211": "ab12"}, "restored BTC", "one", 30)]


def test_the_same_answer_is_written_at_most_once_a_second_however_many_requests_come():
    clock = Clock()
    edge, documents = lists(clock=clock, rewrite_seconds=1.0)
    quotes = answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2))

    for _ in range(50):  # a burst reaching the app before the first document is there
        edge.publish(edge.ticket(("BTC", "ETH"), None), quotes, "list")
        edge.publish(edge.ticket(("BTC",), None), answer(BTC=quotes.quotes["BTC"]), "one")
    assert [name for _, name, *_ in documents.written] == ["BTC,ETH", "restored BTC"]
    assert edge.ticket(("ETH", "BTC"), None) is not None  # another list, its own second

    clock.now += 0.99
    assert edge.ticket(("BTC", "ETH"), None) is None
    assert edge.ticket(("BTC",), None) is None
    clock.now += 0.02
    edge.publish(edge.ticket(("BTC", "ETH"), None), quotes, "list")
    assert [name for _, name, *_ in documents.written] == ["BTC,ETH", "restored BTC", "BTC,ETH"]


def test_a_new_epoch_makes_a_list_due_again_at_once():
    """A quote cached anew took the list documents away: the next answer writes it again."""
    edge, documents = lists(clock=Clock(), rewrite_seconds=1.0)
    quotes = answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2))
    edge.publish(edge.ticket(("BTC", "ETH"), None), quotes, "list")
    assert edge.ticket(("BTC", "ETH"), None) is None

    documents.epoch = "cd34"
    edge.publish(edge.ticket(("BTC", "ETH"), None), quotes, "list")

    assert [epochs for epochs, *_ in documents.written] == [{"m1:11211": "ab12"},
                                                            {"m1:11211": "cd34"}]


def test_lists_seen_once_share_a_small_budget_and_lists_seen_again_a_larger_one():
    edge, documents = lists(first_sight_bytes=1_000, repeat_bytes=10_000)
    body = "x" * 300
    quotes = answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2))

    for n in range(10):  # ten distinct lists (the answer stands in for each): 3,000 bytes
        edge.publish(replace(edge.ticket(("BTC", "ETH"), None), name=f"junk{n}"), quotes, body)
    assert len(documents.written) == 3  # 900 bytes of the 1,000 for first sightings
    for _ in range(5):  # a list seen before (a dashboard polling) still gets written
        edge.publish(replace(edge.ticket(("BTC", "ETH"), None), name="junk0"), quotes, body)
    assert len(documents.written) == 8


def test_a_list_answer_that_cannot_become_a_document_leaves_the_second_to_the_next():
    """The first answer to a list is a fetch: the answer from the cache right after is written."""
    edge, documents = lists(clock=Clock(), rewrite_seconds=1.0)
    fetched = answer(BTC=cached("BTC", 1, source=Source.PROVIDER), ETH=cached("ETH", 2))
    edge.publish(edge.ticket(("BTC", "ETH"), None), fetched, "fetched")

    edge.publish(edge.ticket(("BTC", "ETH"), None),
                 answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2)), "cached")

    assert [body for _, _, body, _ in documents.written] == ["cached"]


class OneAtATime(MemoryStorage):
    """MemoryStorage noting how many threads are inside it at once (it is not thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = self.most = 0
        self.count_lock = threading.Lock()

    def incr(self, *args, **kwargs):
        with self.count_lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.002)  # long enough for another thread to come in, were it let in
        try:
            return super().incr(*args, **kwargs)
        finally:
            with self.count_lock:
                self.inside -= 1


def test_the_byte_budget_is_counted_by_one_thread_at_a_time():
    """make bench: 'RuntimeError: threads can only be started once' from MemoryStorage, a 500,
    once in about 100,000 list answers (gthread: four threads a worker)."""
    storage = OneAtATime()
    edge, documents = lists(budget_storage=storage)
    quotes = answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2))
    start = threading.Barrier(8)

    def answering() -> None:
        start.wait()
        for _ in range(5):
            edge.publish(edge.ticket(("BTC", "ETH"), None), quotes, "body")

    threads = [threading.Thread(target=answering) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(documents.written) == 40
    assert storage.most == 1


def test_a_defect_writing_the_document_never_fails_the_answer(caplog):
    class Broken(RecordingDocuments):
        def publish_list(self, *args) -> None:
            raise RuntimeError("threads can only be started once")

    edge, _ = lists(Broken())

    edge.publish(edge.ticket(("BTC", "ETH"), None),
                 answer(BTC=cached("BTC", 1), ETH=cached("ETH", 2)), "body")

    assert "the edge document of BTC,ETH was not written" in caplog.text
