"""The history statement reads a coin's range through ix_quotes_coin_history, on both dialects;
and a request without `time_start` reads only what its count and interval can return (issue 21,
defect 1): a bounded index range, never the coin's whole history."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from src.adapters.sql.history import SqlHistoryRepository
from src.domain.history import HistoryQuery, HistoryRepository, HistoryService
from tests.fakes import FixedClock
from tests.integration.history_support import BACKENDS, generate_history, open_backend

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ROWS_PER_COIN = 10 * 24 * 12  # a fetch every 5 minutes for 10 days


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


def plan_of(backend, ask: Callable[[HistoryRepository], object], analyze: bool = False) -> str:
    """The plan of the very statement and parameters that `ask` executes (PostgreSQL with
    `analyze`: EXPLAIN ANALYZE as JSON, to count the rows each node read)."""
    executed: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        executed.append((statement, parameters))

    event.listen(backend.engine, "before_cursor_execute", record)
    try:
        with Session(backend.engine) as session:
            ask(SqlHistoryRepository(session))
    finally:
        event.remove(backend.engine, "before_cursor_execute", record)
    (statement, parameters), = executed
    if backend.name == "sqlite":
        explain = "EXPLAIN QUERY PLAN "
    else:
        explain = "EXPLAIN (ANALYZE, FORMAT JSON) " if analyze else "EXPLAIN "
    raw = backend.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(explain + statement, parameters)
        rows = cursor.fetchall()
    finally:
        raw.close()
    if analyze and backend.name == "postgresql":
        return json.dumps(rows[0][0])
    return "\n".join(" ".join(str(column) for column in row) for row in rows)


def a_days_five_minute_history(repository: HistoryRepository) -> None:
    found = repository.history(HistoryQuery(("C7",), "USD", NOW, NOW - timedelta(days=1), 300, 288))
    assert len(found["C7"].points) > 250  # about one per 5 minutes


def test_a_days_history_of_one_coin_is_read_through_the_coin_history_index(backend):
    plan = plan_of(backend, a_days_five_minute_history)

    assert "ix_quotes_coin_history" in plan, plan
    if backend.name == "postgresql":
        assert "Seq Scan on quotes" not in plan, plan
    else:
        assert "SCAN quotes\n" not in plan + "\n", plan


def scans_of_quotes(plan_json: str) -> list[tuple[str, float]]:
    """Each scan of the quotes table and the rows it read (actual rows times loops), from
    EXPLAIN ANALYZE."""
    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)
    top = json.loads(plan_json)[0]["Plan"]
    return [(node["Node Type"], node["Actual Rows"] * node["Actual Loops"]) for node in nodes(top)
            if node.get("Relation Name") == "quotes"]


@pytest.mark.parametrize("interval, count, most", [
    ("5m", 10, 11),  # the default request: ten 5-minute intervals, one fetch each
    ("1h", 24, 24 * 12 + 12),
    ("all", 10, 10),
])
def test_a_request_without_time_start_reads_only_what_count_and_interval_can_return(
        backend, interval, count, most):
    def default_request(repository: HistoryRepository) -> None:
        answer = HistoryService(repository, FixedClock(NOW), "USD").get_history(
            ("C7",), interval=interval, count=count)
        assert 0 < len(answer.data["C7"].points) <= count

    plan = plan_of(backend, default_request, analyze=True)

    if backend.name == "postgresql":
        scans = scans_of_quotes(plan)
        read = [rows for _, rows in scans]
        assert scans and "Seq Scan" not in {kind for kind, _ in scans}, scans
        # The coin's whole history is 2,880 rows: each scan reads at most what the answer can
        # hold, and one more row (the symbol's newest fetch, or the count-th newest).
        assert max(read) <= most + 1 and sum(read) <= 2 * most + 5, scans
    else:
        steps = [line.split(" ", 3)[3] for line in plan.splitlines()]
        if interval == "all":
            # SQLite (`make run`) puts the quotes table outside the join whose row gives the
            # lower bound, and scans its index: PostgreSQL, above, is the production database.
            return
        # Never a SCAN of quotes (a whole index is a scan too): a SEARCH bounded on both sides.
        assert not [step for step in steps if step.startswith("SCAN quotes")], plan
        ranged = [step for step in steps if "ix_quotes_coin_history" in step]
        assert ranged and all("fetched_at>" in step and "fetched_at<" in step
                              for step in ranged), plan
