"""The history statement reads a coin's range through ix_quotes_coin_history, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from src.adapters.sql.history import SqlHistoryRepository
from src.domain.history import HistoryQuery
from tests.integration.history_support import BACKENDS, generate_history, open_backend

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, tmp_path_factory):
    backend = open_backend(request.param, request, tmp_path_factory.mktemp("plan"))
    # 20 coins, a fetch every 5 minutes for 10 days: ~58,000 rows, enough for the planner to
    # prefer an index over a scan when one fits.
    generate_history(backend.engine, coins=20, days=10, step_minutes=5, now=NOW)
    with backend.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    yield backend
    backend.engine.dispose()


def plan_of_a_days_five_minute_history(backend) -> str:
    """The plan of the very statement and parameters a one-day 5-minute request executes."""
    executed: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        executed.append((statement, parameters))

    event.listen(backend.engine, "before_cursor_execute", record)
    try:
        with Session(backend.engine) as session:
            found = SqlHistoryRepository(session).history(
                HistoryQuery(("C7",), "USD", NOW, NOW - timedelta(days=1), 300, 288))
    finally:
        event.remove(backend.engine, "before_cursor_execute", record)
    assert len(found["C7"].points) > 250  # about one per 5 minutes
    (statement, parameters), = executed
    explain = "EXPLAIN " if backend.name == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = backend.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(explain + statement, parameters)
        return "\n".join(" ".join(str(column) for column in row) for row in cursor.fetchall())
    finally:
        raw.close()


def test_a_days_history_of_one_coin_is_read_through_the_coin_history_index(backend):
    plan = plan_of_a_days_five_minute_history(backend)

    assert "ix_quotes_coin_history" in plan, plan
    if backend.name == "postgresql":
        assert "Seq Scan on quotes" not in plan, plan
    else:
        assert "SCAN quotes\n" not in plan + "\n", plan
