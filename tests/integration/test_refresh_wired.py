"""The hot path on real PostgreSQL: noting requested symbols costs no write per request."""

from __future__ import annotations

import threading

from sqlalchemy import event, text

from src.adapters.sql.orm import db
from src.domain.history import PruneReport
from src.entrypoints.wiring import wiring

HOT = ["BTC", "ETH", "SOL", "XRP", "DOGE"]


def test_many_requests_cost_a_handful_of_request_log_writes(wired_app, client):
    with wired_app.app_context():
        engine = db.engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM requested_symbols"))
    writes: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if "requested_symbols" in statement and not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement)

    for i in range(300):
        assert client.get(f"/api/v1/quotes?symbol={HOT[i % 5]},{HOT[(i + 1) % 5]}").status_code == 200
    wiring(wired_app).refresh.demand.flush()
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT symbol FROM requested_symbols")).scalars())

    # One write per flush (every 2 s, or at exit), whatever the number of requests.
    assert 1 <= len(writes) <= 5
    assert stored == set(HOT)


def test_the_daily_prune_runs_in_a_thread_of_its_own_outside_any_app_context(wired_app):
    refresher = wiring(wired_app).refresh.refresher
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(refresher.daily_job()))

    worker.start()
    worker.join(30)

    assert len(outcome) == 1 and isinstance(outcome[0], PruneReport)


def test_the_wired_lease_is_timed_by_the_database_not_the_process_clock(wired_app):
    assert wiring(wired_app).refresh.refresher.lease.database_time
