"""SqlRequestLog: the RequestLog port on SQLAlchemy, one upsert statement per batch of symbols."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from src.adapters.sql.guard import storage_errors
from src.adapters.sql.orm import RequestedSymbolRow
from src.domain.errors import StorageError
from src.domain.ports import RequestLog

_TABLE = RequestedSymbolRow.__table__


def _upsert(insert):
    stmt = insert(_TABLE)
    newer = stmt.excluded.last_requested_at > _TABLE.c.last_requested_at
    return stmt.on_conflict_do_update(
        index_elements=[_TABLE.c.symbol],
        set_={"last_requested_at": case((newer, stmt.excluded.last_requested_at),
                                        else_=_TABLE.c.last_requested_at)},
    )


_UPSERTS = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}
_SINCE = (
    select(_TABLE.c.symbol)
    .where(_TABLE.c.last_requested_at >= bindparam("since"))
    .order_by(_TABLE.c.last_requested_at.desc(), _TABLE.c.symbol)
)


class SqlRequestLog(RequestLog):
    """Symbols and when they were last requested, in `requested_symbols` (one row per symbol).

    Works on its own connections from `engine` (not the request's session), so that a buffer
    can flush from a background thread. Shared by every worker, refresher and replica.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, requested: Mapping[str, datetime]) -> None:
        if not requested:
            return
        upsert = _UPSERTS.get(self.engine.dialect.name)
        if upsert is None:
            raise StorageError("unsupported database dialect")
        # Sorted: concurrent upserts from several workers lock rows in the same order, so
        # PostgreSQL never sees them deadlock.
        rows = [{"symbol": s, "last_requested_at": requested[s]} for s in sorted(requested)]
        with storage_errors("recording requested symbols failed", "write"), \
                self.engine.begin() as conn:
            conn.execute(upsert, rows)

    def requested_since(self, since: datetime) -> list[str]:
        with storage_errors("reading requested symbols failed", "read"), \
                self.engine.connect() as conn:
            return list(conn.execute(_SINCE, {"since": since}).scalars())
