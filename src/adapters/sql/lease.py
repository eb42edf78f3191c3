"""SqlRefreshLease: the RefreshLease port as one row updated by conditional UPDATEs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from src.adapters.sql.guard import storage_errors
from src.adapters.sql.orm import RefreshLeaseRow
from src.domain.errors import StorageError
from src.domain.model import RefreshRound
from src.domain.ports import Clock, RefreshLease

_TABLE = RefreshLeaseRow.__table__
_C = _TABLE.c
ROUND = "refresh"
# PostgreSQL's and SQLite's inserts share the ON CONFLICT API, which the base Insert lacks.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlRefreshLease(RefreshLease):
    """The lease in `refresh_lease`: every change is one UPDATE whose WHERE says when it may
    happen, so the database decides the race (on PostgreSQL the loser's UPDATE waits for the
    winner's row lock, re-reads the row and matches nothing; SQLite serialises writers).

    With `database_time` (what the app uses), PostgreSQL's `now()` times the lease, so that a
    replica whose clock runs ahead can neither take a live lease nor start a round early, nor
    one whose clock runs behind hold one past its TTL. Otherwise (and on SQLite, one host
    anyway) the times come from `clock`.
    """

    def __init__(self, engine: Engine, clock: Clock, *, database_time: bool = False) -> None:
        self.engine = engine
        self.clock = clock
        self.database_time = database_time and engine.dialect.name == "postgresql"

    def _now(self):
        """Now, for the lease's own times: the database's clock, or ours."""
        return func.now() if self.database_time else self.clock.now()

    def acquire(self, holder: str, ttl_seconds: float, interval_seconds: float) -> bool:
        now = self._now()
        free = and_(
            _C.name == ROUND,
            or_(_C.expires_at.is_(None), _C.expires_at <= now),
            or_(_C.round_started_at.is_(None),
                _C.round_started_at <= now - timedelta(seconds=interval_seconds)),
        )
        take = (update(_TABLE).where(free)
                .values(holder=holder, expires_at=now + timedelta(seconds=ttl_seconds),
                        round_started_at=now))
        return self._run(lambda conn: self._update_creating(conn, ROUND, take), "write")

    def renew(self, holder: str, ttl_seconds: float) -> bool:
        now = self._now()
        extend = (update(_TABLE)
                  .where(_C.name == ROUND, _C.holder == holder, _C.expires_at > now)
                  .values(expires_at=now + timedelta(seconds=ttl_seconds)))
        return self._run(lambda conn: conn.execute(extend).rowcount == 1, "write")

    def release(self, holder: str, finished: RefreshRound | None = None) -> None:
        values: dict = {"holder": None, "expires_at": None}
        if finished is not None:
            values.update(last_started_at=finished.started_at,
                          last_finished_at=finished.finished_at,
                          last_symbols=finished.symbols, last_refreshed=finished.refreshed,
                          last_calls=finished.calls, last_stopped=finished.stopped)
        give_up = update(_TABLE).where(_C.name == ROUND, _C.holder == holder).values(**values)
        self._run(lambda conn: conn.execute(give_up), "write")

    def last_round(self) -> RefreshRound | None:
        query = select(_C.last_started_at, _C.last_finished_at, _C.last_symbols, _C.last_refreshed,
                       _C.last_calls, _C.last_stopped).where(_C.name == ROUND)
        row = self._run(lambda conn: conn.execute(query).first(), "read")
        if row is None or row.last_finished_at is None:
            return None
        return RefreshRound(started_at=row.last_started_at, finished_at=row.last_finished_at,
                            symbols=row.last_symbols, refreshed=row.last_refreshed,
                            calls=row.last_calls, stopped=row.last_stopped)

    def claim_daily(self, job: str) -> bool:
        now = self._now()
        name = f"daily:{job}"
        due = and_(_C.name == name,
                   or_(_C.round_started_at.is_(None),
                       _C.round_started_at <= now - timedelta(days=1)))
        claim = update(_TABLE).where(due).values(round_started_at=now)
        return self._run(lambda conn: self._update_creating(conn, name, claim), "write")

    def _update_creating(self, conn: Connection, name: str, statement) -> bool:
        """Run the conditional UPDATE; when the row does not exist yet, create it (empty, so
        the condition holds) and run the UPDATE again."""
        if conn.execute(statement).rowcount == 1:
            return True
        insert = _INSERTS[conn.dialect.name](_TABLE).values(name=name).on_conflict_do_nothing()
        if conn.execute(insert).rowcount == 0:
            return False  # the row was there: the condition did not hold
        return conn.execute(statement).rowcount == 1

    def _run(self, work, kind: str):
        if self.engine.dialect.name not in _INSERTS:
            raise StorageError("unsupported database dialect")
        with storage_errors("the refresh lease failed", kind), self.engine.begin() as conn:
            return work(conn)
