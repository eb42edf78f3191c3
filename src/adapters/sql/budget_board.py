"""SqlBoard: the credit governor's board in the deployment's database (`budget_counters`).

Every process of one deployment (gunicorn's workers, the refresher, each replica) shares the
database already, so the counters live there: one budget, not one per process, and none lost
with a memcached node that restarts or evicts. Each
operation is one statement (an upsert whose conflict clause does the arithmetic), so racing
processes count exactly; expired rows count as absent and are deleted as counters are made.
Only provider calls and /usage reach it, never a cache hit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from src.adapters.budget.board import MAX_TTL_SECONDS, Board
from src.adapters.sql.guard import storage_errors
from src.adapters.sql.orm import BudgetCounterRow
from src.domain.errors import StorageError

_TABLE = BudgetCounterRow.__table__
_C = _TABLE.c
# PostgreSQL's and SQLite's inserts share the ON CONFLICT API, which the base Insert lacks.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_T = TypeVar("_T")


class SqlBoard(Board):
    """Counters and notes in `budget_counters`, timed by `now` (Unix seconds)."""

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        if engine.dialect.name not in _INSERTS:
            raise StorageError("unsupported database dialect")
        self.engine = engine
        self.now = now

    def add(self, key: str, amount: int, ttl: float) -> int:
        now = self.now()
        upsert = self._upsert(key, amount, ttl, now, lambda given: _C.count + given)

        def work(conn: Connection) -> int:
            conn.execute(delete(_TABLE).where(_C.expires_at < now - 60, _C.name != key))
            return int(conn.execute(upsert.returning(_C.count)).scalar_one())

        return self._run(work)

    def give_back(self, key: str, amount: int) -> None:
        if amount <= 0:
            return
        taken = (update(_TABLE).where(_C.name == key, _C.expires_at >= self.now())
                 .values(count=case((_C.count > amount, _C.count - amount), else_=0)))
        self._run(lambda conn: conn.execute(taken))

    def raise_to(self, key: str, target: int, ttl: float) -> None:
        upsert = self._upsert(key, target, ttl, self.now(),
                              lambda given: case((_C.count < given, given), else_=_C.count))
        self._run(lambda conn: conn.execute(upsert))

    def _upsert(self, key: str, count: int, ttl: float, now: float, live: Callable):
        """Create the counter at `count` for `ttl` seconds (also in place of an expired one), or
        set a live one to `live(count)`, in one statement."""
        insert = _INSERTS[self.engine.dialect.name](_TABLE).values(
            name=key, count=count, expires_at=now + ttl)
        expired = _C.expires_at < now
        return insert.on_conflict_do_update(
            index_elements=[_C.name],
            set_={"count": case((expired, insert.excluded.count),
                                else_=live(insert.excluded.count)),
                  "expires_at": case((expired, insert.excluded.expires_at),
                                     else_=_C.expires_at)})

    def counts(self, keys: Sequence[str]) -> list[int]:
        found = dict(self._live(keys, _C.count))
        return [int(found.get(key) or 0) for key in keys]

    def notes(self, keys: Sequence[str]) -> list[str | None]:
        found = dict(self._live(keys, _C.note))
        return [found.get(key) for key in keys]

    def write_note(self, key: str, value: str, ttl: float) -> None:
        expires = self.now() + min(max(ttl, 1), MAX_TTL_SECONDS)
        insert = _INSERTS[self.engine.dialect.name](_TABLE).values(
            name=key, count=0, note=value, expires_at=expires)
        upsert = insert.on_conflict_do_update(
            index_elements=[_C.name],
            set_={"note": insert.excluded.note, "expires_at": insert.excluded.expires_at})
        self._run(lambda conn: conn.execute(upsert))

    def _live(self, keys: Sequence[str], column: Any) -> list[tuple[str, Any]]:
        query = select(_C.name, column).where(_C.name.in_(list(keys)),
                                              _C.expires_at >= self.now())
        return [tuple(row) for row in self._run(lambda conn: conn.execute(query).all())]

    def _run(self, work: Callable[[Connection], _T]) -> _T:
        with storage_errors("the credit counters failed", "write"), self.engine.begin() as conn:
            return work(conn)
