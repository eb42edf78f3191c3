"""history prune on 200 days of generated history, on real PostgreSQL and SQLite; on PostgreSQL
also while requests and new fetches keep coming."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session

from src.adapters.sql.history import (
    SqlHistoryRepository,
    prune_statement,
    prune_windows,
)
from src.adapters.sql.orm import QuoteRow
from src.adapters.sql.quotes import SqlQuoteRepository
from src.domain.history import (
    DAY,
    HistoryQuery,
    RetentionPolicy,
    epoch_seconds,
    from_epoch,
)
from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from tests.fakes import FixedClock, coin_quote
from tests.integration.history_support import BACKENDS, generate_history, open_backend

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
POLICY = RetentionPolicy(full_days=7, hourly_days=90)
FULL_FROM, HOURLY_FROM = NOW - timedelta(days=7), NOW - timedelta(days=90)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    backend = open_backend(request.param, request, tmp_path)
    yield backend
    backend.engine.dispose()


def fetch_times(engine) -> dict[int, list[datetime]]:
    with Session(engine) as session:
        rows = session.execute(select(QuoteRow.coin_id, QuoteRow.fetched_at)).all()
    times: dict[int, list[datetime]] = defaultdict(list)
    for coin_id, fetched_at in rows:
        times[coin_id].append(fetched_at)
    return {coin: sorted(found) for coin, found in times.items()}


def daily_answers(engine, symbols=("C1", "C2"), currency="USD") -> dict:
    with Session(engine) as session:
        found = SqlHistoryRepository(session).history(
            HistoryQuery(tuple(symbols), currency, NOW, None, 86400, 10_000))
    return {s: [(p.fetched_at, p.price) for p in h.points] for s, h in found.items()}


def prune(engine, batch_size=2000, now=NOW):
    with Session(engine) as session:
        return SqlHistoryRepository(session).prune(now, POLICY, batch_size)


def newest_per(times: list[datetime], seconds: int) -> dict[int, datetime]:
    newest: dict[int, datetime] = {}
    for moment in times:
        key = int(moment.timestamp()) // seconds
        newest[key] = max(newest.get(key, moment), moment)
    return newest


def test_prune_keeps_recent_fetches_then_the_newest_per_hour_then_per_day(backend):
    generate_history(backend.engine, coins=2, days=200, step_minutes=20, now=NOW)
    before = fetch_times(backend.engine)

    report = prune(backend.engine)

    after = fetch_times(backend.engine)
    assert report.deleted > 0
    for coin, times in before.items():
        kept = set(after[coin])
        assert {t for t in times if t >= FULL_FROM} <= kept  # every recent fetch
        hourly = [t for t in after[coin] if HOURLY_FROM <= t < FULL_FROM]
        for hour, newest in newest_per([t for t in times if HOURLY_FROM <= t < FULL_FROM], 3600).items():
            if HOURLY_FROM.timestamp() // 3600 < hour < FULL_FROM.timestamp() // 3600:
                assert [t for t in hourly if int(t.timestamp()) // 3600 == hour] == [newest]
        daily = [t for t in after[coin] if t < HOURLY_FROM]
        for day, newest in newest_per([t for t in times if t < HOURLY_FROM], 86400).items():
            if day < HOURLY_FROM.timestamp() // 86400:
                assert [t for t in daily if int(t.timestamp()) // 86400 == day] == [newest]
    assert sum(map(len, after.values())) == sum(map(len, before.values())) - report.deleted


def test_daily_answers_are_the_same_before_and_after_and_a_second_run_changes_nothing(backend):
    generate_history(backend.engine, coins=2, days=200, step_minutes=20, now=NOW)
    answers_before = daily_answers(backend.engine)

    first = prune(backend.engine)
    rows_after_first = fetch_times(backend.engine)
    second = prune(backend.engine)

    assert first.deleted > 0
    assert daily_answers(backend.engine) == answers_before
    assert len(answers_before["C1"]) == 201
    assert second.deleted == 0
    assert fetch_times(backend.engine) == rows_after_first


def test_each_currency_keeps_its_own_newest_per_period(backend):
    generate_history(backend.engine, coins=1, days=120, step_minutes=60, now=NOW)
    # The same fetches in EUR, inserted later: across currencies they would win every tie.
    with backend.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO quotes (coin_id, lookup_symbol, currency, fetched_at, is_active, price,"
            " quote_last_updated) SELECT coin_id, lookup_symbol, 'EUR', fetched_at, is_active,"
            " price, quote_last_updated FROM quotes"))
    before = {currency: daily_answers(backend.engine, ("C1",), currency) for currency in ("USD", "EUR")}

    prune(backend.engine)

    assert {currency: daily_answers(backend.engine, ("C1",), currency)
            for currency in ("USD", "EUR")} == before
    assert len(before["EUR"]["C1"]) == 121


def test_prune_deletes_in_short_transactions_of_at_most_the_batch_size(backend):
    generate_history(backend.engine, coins=1, days=100, step_minutes=10, now=NOW)
    deletions: list[int] = []
    event.listen(backend.engine, "after_cursor_execute",
                 lambda conn, cursor, statement, *args: deletions.append(cursor.rowcount)
                 if statement.lstrip().upper().startswith("DELETE") else None)

    report = prune(backend.engine, batch_size=500)

    assert report.deleted > 5000
    assert max(deletions) == 500
    assert report.batches == len(deletions) >= report.deleted / 500


def test_the_command_prunes_with_the_configured_retention(backend):
    generate_history(backend.engine, coins=1, days=30, step_minutes=30, now=NOW)
    app = create_app(Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9",
                              database_url=backend.url, history_full_days=2, history_hourly_days=10),
                     clock=FixedClock(NOW))

    result = app.test_cli_runner().invoke(args=["history", "prune", "--batch-size", "100"])
    again = app.test_cli_runner().invoke(args=["history", "prune"])

    times = fetch_times(backend.engine)[1001]
    assert result.exit_code == 0, result.output
    assert "history pruned" in result.output and "older than 2 days" in result.output
    assert min(t for t in times if t >= NOW - timedelta(days=2)) < NOW - timedelta(days=2) + timedelta(minutes=31)
    assert len([t for t in times if t < NOW - timedelta(days=10)]) <= 21  # one a day
    assert again.exit_code == 0 and "0 rows thinned to one per hour" in again.output


def test_a_failing_database_is_a_clear_command_error_not_a_trace():
    app = create_app(Settings(cmc_api_key="unused", cmc_base_url="http://127.0.0.1:9",
                              database_url="postgresql+psycopg2://nobody@127.0.0.1:9/none"))

    result = app.test_cli_runner().invoke(args=["history", "prune"])

    assert result.exit_code == 1
    assert "pruning history failed" in result.output
    assert "Traceback" not in result.output


def test_requests_and_new_fetches_keep_being_served_while_prune_runs(request, tmp_path):
    backend = open_backend("postgresql", request, tmp_path)
    generate_history(backend.engine, coins=3, days=200, step_minutes=15, now=NOW)
    # Readers and writers give up after 300 ms of waiting for a lock: a prune that locked the
    # table, or held row locks for long, would fail them.
    busy = create_engine(backend.url, connect_args={"options": "-c lock_timeout=300"})
    reports = []
    pruner = threading.Thread(target=lambda: reports.append(prune(backend.engine, batch_size=100)))
    served, strong_locks, step = 0, [], 0

    pruner.start()
    with Session(busy) as session:
        history = SqlHistoryRepository(session)
        quotes = SqlQuoteRepository(session)
        while pruner.is_alive():
            step += 1
            found = history.history(HistoryQuery(("C1", "C2", "C3"), "USD", NOW, NOW - timedelta(days=1), 300, 288))
            quotes.add({"C2": coin_quote("C2", 1002, "1.5", fetched_at=NOW + timedelta(seconds=step))})
            served += 1
            assert len(found["C1"].points) == 96  # a fetch every 15 minutes
            strong_locks += session.execute(text(
                "SELECT mode FROM pg_locks WHERE relation = 'quotes'::regclass AND mode IN"
                " ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')"
            )).scalars().all()
            session.rollback()
    pruner.join()
    busy.dispose()
    backend.engine.dispose()

    assert reports and reports[0].deleted > 40_000
    assert served >= 5, served  # ~500 short transactions: the loop ran all along
    assert strong_locks == []  # and no statement waited 300 ms for a lock (lock_timeout above)


def test_each_prune_batch_ranks_one_week_of_history_not_all_of_it(request, tmp_path):
    # A first prune of a long minutely history took hours when every batch ranked the coin's
    # whole history before the cutoff; a batch's work must not grow with the history's length.
    backend = open_backend("postgresql", request, tmp_path)
    generate_history(backend.engine, coins=1, days=200, step_minutes=15, now=NOW)
    _, daily_before = POLICY.cutoffs(NOW)
    rank_before = from_epoch((epoch_seconds(daily_before) // DAY + 1) * DAY)
    window_from, window_before = prune_windows(NOW - timedelta(days=200), from_epoch(0),
                                               rank_before)[0]
    statement = prune_statement("postgresql", DAY).compile(
        dialect=backend.engine.dialect, compile_kwargs={"render_postcompile": True})

    with backend.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + str(statement), {
            **statement.params, "coin_id": 1001, "currency": "USD", "window_from": window_from,
            "window_before": window_before,
            "zone_from": from_epoch(0), "zone_before": daily_before, "batch": 100})
        plan = cursor.fetchone()[0][0]["Plan"]
        conn.rollback()  # EXPLAIN ANALYZE ran the DELETE
    backend.engine.dispose()

    ranked = [node["Actual Rows"] for node in _nodes(plan) if node["Node Type"] == "WindowAgg"]
    assert ranked and 0 < max(ranked) <= 7 * 96  # at most a week at four an hour, of ~19,000


def test_a_prune_batch_reads_its_coin_currency_and_window_through_the_index_not_the_table(
        request, tmp_path):
    # 211,000 rows made one batch a sequential scan of the table (113 ms), then another for the
    # DELETE ... IN: a batch must cost what its window holds, however large the table.
    backend = open_backend("postgresql", request, tmp_path)
    generate_history(backend.engine, coins=2, days=28, step_minutes=5, now=NOW)
    columns = "coin_id, lookup_symbol, fetched_at, cmc_rank, is_active, price, quote_last_updated"
    with backend.engine.begin() as conn:  # the same history in a second currency
        conn.execute(text(f"INSERT INTO quotes (currency, {columns})"
                          f" SELECT 'EUR', {columns} FROM quotes"))
        conn.execute(text("ANALYZE quotes"))
    hourly_from, _ = POLICY.cutoffs(NOW)
    rank_before = from_epoch((epoch_seconds(hourly_from) // 3600 + 1) * 3600)
    window_from, window_before = prune_windows(NOW - timedelta(days=28), hourly_from,
                                               rank_before)[0]
    statement = prune_statement("postgresql", 3600).compile(
        dialect=backend.engine.dialect, compile_kwargs={"render_postcompile": True})

    with backend.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + str(statement), {
            **statement.params, "coin_id": 1001, "currency": "USD", "window_from": window_from,
            "window_before": window_before, "zone_from": from_epoch(0),
            "zone_before": hourly_from, "batch": 5000})
        plan = cursor.fetchone()[0][0]["Plan"]
        conn.rollback()  # EXPLAIN ANALYZE ran the DELETE
    backend.engine.dispose()

    scans = [node for node in _nodes(plan) if node.get("Relation Name") == "quotes"
             and node["Node Type"] != "ModifyTable"]
    week = 7 * 24 * 12  # the window's rows: a week of one coin in one currency, of 16,000
    assert scans and not [n for n in scans if "Seq" in n["Node Type"]], scans
    for node in scans:
        bounds = node.get("Index Cond", "") + node.get("Recheck Cond", "")
        by_range = "currency" in bounds and "fetched_at >=" in bounds
        by_victim = bounds.startswith("(id = ")  # one primary-key look-up per row deleted
        assert by_range or by_victim, node
        assert node["Actual Rows"] * node["Actual Loops"] <= week + 1, node


def _nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
