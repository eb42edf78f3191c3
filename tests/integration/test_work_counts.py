"""The work each path does, counted (not timed): cache calls, SQL statements, upstream calls."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event

from src.adapters.orm import db

FIFTY = [f"SYN{i}" for i in range(1, 51)]
CACHE_METHODS = ("get", "get_many", "set", "set_many", "add", "delete", "delete_many")


class Work:
    """Counts calls into the Flask-Caching object and statements/commits on the engine."""

    def __init__(self, app, monkeypatch) -> None:
        self.cache = Counter()
        self.sql: list[str] = []
        self.commits = 0
        flask_cache = app.extensions["coinquote"].cache.cache
        for name in CACHE_METHODS:
            original = getattr(flask_cache, name)

            def counted(*args, _name=name, _original=original, **kwargs):
                self.cache[_name] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(flask_cache, name, counted)
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        self._engine = engine

    def _statement(self, conn, cursor, statement, *args) -> None:
        self.sql.append(statement.lstrip().split(None, 1)[0].upper())

    def _commit(self, conn) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.cache.clear()
        self.sql.clear()
        self.commits = 0

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)
        event.remove(self._engine, "commit", self._commit)



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
    assert work.sql == []


def test_a_fifty_symbol_provider_path_is_one_call_one_cache_write_one_transaction(wired_app, work, cmc):
    client = wired_app.test_client()

    sources = get(client, FIFTY)

    assert set(sources.values()) == {"provider"}
    assert len(cmc.quote_calls()) == 1
    assert work.cache["set_many"] == 1  # all 50 quotes in one write
    assert (work.cache["add"], work.cache["delete"]) == (1, 1)  # the fetch claim, taken and released
    assert work.cache["get_many"] == 2  # the miss, and a second look once the claim is ours
    assert work.commits == 1
    assert work.sql.count("SELECT") == 1
    assert work.sql.count("INSERT") == 2  # coins upsert and quote history, each one batched statement


def test_a_fifty_symbol_database_hit_is_one_select(wired_app, work, flush_memcached):
    client = wired_app.test_client()
    get(client, FIFTY)
    flush_memcached()
    work.reset()

    sources = get(client, FIFTY)

    assert set(sources.values()) == {"database"}
    assert work.sql == ["SELECT"]
    assert work.commits == 0
    assert work.cache == Counter(get_many=1, set_many=1)  # the miss, then the re-cache
