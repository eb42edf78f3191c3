"""The work each path does, counted (not timed): cache calls, SQL statements, upstream calls."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event

from src.adapters.sql.orm import db
from src.entrypoints.wiring import wiring

FIFTY = [f"SYN{i}" for i in range(1, 51)]
CACHE_METHODS = ("get", "get_many", "set", "set_many", "add", "delete", "delete_many")
# What reaches memcached through pymemcache's HashClient: the per-symbol fetch claims are one
# `add` per symbol (the text protocol has no multi-key add) and are released by `gets` + `cas`.
CLIENT_METHODS = ("add", "gets_many", "cas", "delete", "delete_many", "set", "set_many")


def counting(counter: Counter, obj, names, monkeypatch, prefix: str = "") -> None:
    """Count calls to the methods `names` of the third-party object `obj`."""
    for name in names:
        original = getattr(obj, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counter[prefix + _name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(obj, name, counted)


class Work:
    """Counts calls into the Flask-Caching object, into memcached (pymemcache clients: the
    cache's and the edge documents' own, one per server) and statements/commits on the engine."""

    def __init__(self, app, monkeypatch) -> None:
        self.cache = Counter()
        self.memcached = Counter()
        self.edge = Counter()
        self.sql: list[str] = []
        self.commits = 0
        quote_cache = wiring(app).cache
        counting(self.cache, quote_cache.cache, CACHE_METHODS, monkeypatch)
        counting(self.memcached, quote_cache.backend.client, CLIENT_METHODS, monkeypatch)
        for server, client in quote_cache.edge.clients.items():
            counting(self.edge, client, ("get", "add", "append", "set", "set_many"), monkeypatch,
                     prefix=f"{server} ")
        with app.app_context():
            engine = db.engine
        # Reads go through the repository's own autocommit engine: its statements count too.
        self._engines = [engine, wiring(app).repository.reader]
        for each in self._engines:
            event.listen(each, "before_cursor_execute", self._statement)
            event.listen(each, "commit", self._commit)

    def _statement(self, conn, cursor, statement, *args) -> None:
        self.sql.append(statement.lstrip().split(None, 1)[0].upper())

    def _commit(self, conn) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.cache.clear()
        self.memcached.clear()
        self.edge.clear()
        self.sql.clear()
        self.commits = 0

    def close(self) -> None:
        for each in self._engines:
            event.remove(each, "before_cursor_execute", self._statement)
            event.remove(each, "commit", self._commit)



@pytest.fixture
def work(wired_app, monkeypatch):
    counter = Work(wired_app, monkeypatch)
    yield counter
    counter.close()


def get(client, symbols):
    response = client.get("/api/v1/quotes?symbol=" + ",".join(symbols))
    assert response.status_code == 200, response.get_json()
    return {s: c["source"] for s, c in response.get_json()["data"].items()}


def test_a_cache_hit_is_one_cache_call_and_no_sql(wired_app, work):
    client = wired_app.test_client()
    get(client, FIFTY)
    work.reset()

    sources = get(client, FIFTY)

    assert set(sources.values()) == {"cache"}
    assert work.cache == Counter(get_many=1)
    assert work.memcached == Counter()  # nothing claimed, nothing written
    # The edge, per server: the epoch read before the quotes, the list's document written and
    # registered (the register is new: `append` finds none, `add` makes it), the epoch re-read.
    assert work.edge == Counter({f"{server} {op}": n for server in wiring(
        wired_app).cache.edge.clients for op, n in (("get", 2), ("set", 1), ("append", 1),
                                                      ("add", 1))})
    assert work.sql == []


def test_a_fifty_symbol_provider_path_is_one_call_one_cache_write_one_transaction(
        wired_app, work, cmc, memcached_servers):
    client = wired_app.test_client()

    sources = get(client, FIFTY)

    assert set(sources.values()) == {"provider"}
    assert len(cmc.quote_calls()) == 1
    assert work.cache["set_many"] == 1  # all 50 quotes in one write
    assert work.cache["get_many"] == 2  # the miss, and a second look once the claims are ours
    # Per-symbol claims: 50 `add`s to claim, one `gets_many` and 50 `cas` to release them.
    assert work.memcached == Counter(add=50, gets_many=1, cas=50)
    # Per memcached server: the list's epoch read (none yet: one added, read back), the 50 edge
    # documents in one (noreply) write, and a new epoch for the new quotes (acknowledged).
    assert work.edge == Counter({f"{server} {op}": n for server in memcached_servers
                                 for op, n in (("get", 2), ("add", 1), ("set_many", 1),
                                               ("set", 1))})
    assert work.commits == 1
    # The stored quotes, and the hot set a call carries (read at most every few seconds).
    assert work.sql.count("SELECT") == 2
    assert work.sql.count("INSERT") == 2  # coins upsert and quote history, each one batched statement


def test_a_fifty_symbol_database_hit_is_one_select(wired_app, work, flush_memcached,
                                                    memcached_servers):
    client = wired_app.test_client()
    get(client, FIFTY)
    flush_memcached()
    work.reset()

    sources = get(client, FIFTY)

    assert set(sources.values()) == {"database"}
    assert work.sql == ["SELECT"]
    assert work.commits == 0
    assert work.cache == Counter(get_many=1, set_many=1)  # the miss, then the re-cache
    assert work.memcached == Counter()  # no claim: the database answered every symbol
    # The documents re-written in one write per server (and the flushed epoch read and made
    # again; a quote fetched within its entry's life counts as new: a new epoch).
    assert [work.edge[f"{server} set_many"] for server in memcached_servers] \
        == [1] * len(memcached_servers)
