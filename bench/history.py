"""History benchmark: 1,000,000 stored fetches over 100 coins in PostgreSQL; a one-day 5-minute
history of one coin, timed in the app (server time) and in the database, with its plan.

    python -m bench.history [--rows-per-coin 10000] [--coins 100] [--requests 300]
                            [--database-url postgresql+psycopg2://...]

Without --database-url a throwaway PostgreSQL is started (as the tests do). The rows are made
by one INSERT ... SELECT over generate_series: one fetch a minute per coin, the newest now.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, event, text

from tests.servers import Postgres

GENERATE = """
INSERT INTO coins (id, symbol, name, slug, updated_at)
SELECT c, 'B' || c, 'Bench coin ' || c, 'bench-' || c, :now FROM generate_series(1, :coins) AS c;

INSERT INTO quotes (coin_id, lookup_symbol, currency, fetched_at, cmc_rank, is_active,
                    circulating_supply, price, volume_24h, market_cap, quote_last_updated)
SELECT c, 'B' || c, 'USD', :now - make_interval(mins => m), c, true, 1000000,
       1000 + c + (m % 997) / 7.0, 1e9 + m, 1e12 + c * m, :now - make_interval(mins => m, secs => 20)
FROM generate_series(1, :coins) AS c, generate_series(0, :per_coin - 1) AS m;
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--rows-per-coin", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", help="an EMPTY database to fill (default: a throwaway one)")
    return parser.parse_args(argv)


@contextmanager
def database(url: str | None):
    if url:
        yield url
        return
    server = Postgres().start()
    try:
        yield server.url
    finally:
        server.close()


def generate(url: str, coins: int, per_coin: int, now: datetime) -> float | None:
    """Fill the database (None when it already holds the rows: a re-run on --database-url)."""
    from tests.conftest import migrate_database

    migrate_database(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        if conn.execute(text("SELECT count(*) FROM quotes")).scalar() == coins * per_coin:
            engine.dispose()
            return None
    started = time.perf_counter()
    with engine.begin() as conn:
        for statement in GENERATE.strip().split(";\n\n"):
            conn.execute(text(statement), {"now": now, "coins": coins, "per_coin": per_coin})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE quotes"))
        conn.execute(text("VACUUM ANALYZE coins"))
    engine.dispose()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Whole minutes: a re-run on the same database asks for the same day.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with database(args.database_url) as url:
        seconds = generate(url, args.coins, args.rows_per_coin, now)
        rows = args.coins * args.rows_per_coin
        if seconds is None:
            with create_engine(url).connect() as conn:
                now = conn.execute(text("SELECT max(fetched_at) FROM quotes")).scalar()
            print(f"reusing {rows:,} rows over {args.coins} coins, newest {now.isoformat()}")
        else:
            print(f"generated {rows:,} rows over {args.coins} coins in {seconds:.1f} s")

        from src.adapters.sql.orm import db
        from src.entrypoints.app import create_app
        from src.entrypoints.settings import Settings

        app = create_app(Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9",
                                  database_url=url, log_level="WARNING"))
        start = int((now - timedelta(days=1)).timestamp())
        end = int(now.timestamp())
        with app.app_context():
            engine = db.engine
        timer = StatementTimer(engine)
        # The default request (no time_start) reads only its 10 intervals, like the ranged one
        # reads only its day: neither ranks the coin's whole history (issue 21).
        for path in (f"/api/v1/quotes/history?symbol=B42&interval=5m&count=10000"
                     f"&time_start={start}&time_end={end}",
                     "/api/v1/quotes/history?symbol=B42",
                     "/api/v1/quotes/history?symbol=B42&interval=all"):
            measure(app.test_client(), timer, path, args.requests)
        explain_prune_batch(engine, now)
    return 0


class StatementTimer:
    """Times each statement on `engine` and keeps the last one with its parameters."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.database_ms: list[float] = []
        self.last: dict[str, Any] = {}
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               many: bool) -> None:
        conn.info["started"] = time.perf_counter()
        self.statements.append(statement)
        self.last.update(statement=statement, parameters=parameters)

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              many: bool) -> None:
        self.database_ms.append((time.perf_counter() - conn.info.pop("started")) * 1000)

    def clear(self) -> None:
        self.statements.clear()
        self.database_ms.clear()


def measure(client: Any, timer: StatementTimer, path: str, requests: int) -> None:
    """`requests` timed GETs of `path` after 20 warm-ups, then the plan of the last one."""
    for _ in range(20):  # warm-up: connections, compiled-statement cache, buffers
        client.get(path)
    timer.clear()
    server_ms, cpu_ms = [], []
    for _ in range(requests):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        server_ms.append((time.perf_counter() - began) * 1000)
        cpu_ms.append((time.process_time() - began_cpu) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    points = len(response.get_json()["data"]["B42"]["quotes"])

    print(f"\nGET {path}")
    print(f"  {points} points; {len(timer.statements) // requests} SQL statement(s) per request")
    print(f"  server time (in-process request, Flask to JSON):"
          f" median {statistics.median(server_ms):.2f} ms,"
          f" p95 {percentile(server_ms, 0.95):.2f} ms, max {max(server_ms):.2f} ms"
          f" over {requests} requests")
    print(f"  of which Python CPU in the app: median {statistics.median(cpu_ms):.2f} ms")
    print(f"  database round trip: median {statistics.median(timer.database_ms):.2f} ms,"
          f" p95 {percentile(timer.database_ms, 0.95):.2f} ms")
    print(f"  load average during the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          f" on {os.cpu_count()} cores")
    # The very statement and parameters of the last request, explained on a raw cursor.
    print("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF):")
    print("\n".join(explain(timer.engine, timer.last["statement"], timer.last["parameters"])))


def explain_prune_batch(engine: Any, now: datetime) -> None:
    """The plan of one hourly-thinning batch of one coin (rolled back): it reads one window of
    that coin in one currency through the index, not the table. The generated history is about
    a week long, so the batch thins what is older than one day (HISTORY_FULL_DAYS=1)."""
    from src.adapters.sql.history import prune_statement, prune_windows
    from src.domain.history import HOUR, RetentionPolicy, epoch_seconds, from_epoch

    hourly_from, _ = RetentionPolicy(full_days=1).cutoffs(now)
    rank_before = from_epoch((epoch_seconds(hourly_from) // HOUR + 1) * HOUR)
    with engine.connect() as conn:
        oldest = conn.execute(text("SELECT min(fetched_at) FROM quotes WHERE coin_id = 42")
                              ).scalar()
    window_from, window_before = prune_windows(oldest, from_epoch(0), rank_before)[0]
    statement = prune_statement("postgresql", HOUR).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    parameters = {**statement.params, "coin_id": 42, "currency": "USD",
                  "window_from": window_from, "window_before": window_before,
                  "zone_from": from_epoch(0), "zone_before": hourly_from, "batch": 5000}
    print("\nOne prune batch (hourly thinning older than a day, coin 42, its newest window),"
          " EXPLAIN (ANALYZE, BUFFERS, COSTS OFF), rolled back:")
    print("\n".join(explain(engine, str(statement), parameters)))


def explain(engine: Any, statement: str, parameters: Any) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the very statement and parameters, on a raw cursor."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
        plan = [row[0] for row in cursor.fetchall()]
        raw.rollback()  # the DELETE explained is not kept
    finally:
        raw.close()
    return plan


    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
