"""The request log and the refresh lease on real PostgreSQL and on SQLite (both deployments)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, text

from src.adapters.sql.lease import SqlRefreshLease
from src.adapters.sql.request_log import SqlRequestLog
from src.domain.errors import StorageError
from src.domain.model import RefreshRound
from tests.conftest import migrate_database
from tests.fakes import FixedClock

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('refresh-sqlite') / 'coinquote.db'}"
    migrate_database(url)
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def db_engine(request):
    url = request.getfixturevalue("database_url" if request.param == "postgresql" else "sqlite_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM requested_symbols"))
        conn.execute(text("DELETE FROM refresh_lease"))
    yield engine
    engine.dispose()


def statements(engine, verb: str) -> list[str]:
    """Start recording the statements beginning with `verb` that `engine` runs."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(verb):
            seen.append(statement)

    return seen


def test_recording_300_symbols_is_one_insert_statement(db_engine):
    log = SqlRequestLog(db_engine)
    inserts = statements(db_engine, "INSERT")

    log.record({f"S{i}": T for i in range(300)})

    assert len(inserts) == 1
    assert len(log.requested_since(T)) == 300


def test_an_older_request_time_never_replaces_a_newer_one(db_engine):
    log = SqlRequestLog(db_engine)
    log.record({"BTC": T, "ETH": T})

    log.record({"BTC": T - timedelta(minutes=5), "ETH": T + timedelta(minutes=5)})

    assert log.requested_since(T + timedelta(seconds=1)) == ["ETH"]
    assert set(log.requested_since(T)) == {"BTC", "ETH"}


def test_requested_since_lists_the_most_recent_first(db_engine):
    log = SqlRequestLog(db_engine)
    log.record({"OLD": T - timedelta(hours=1), "MID": T, "NEW": T + timedelta(seconds=30)})

    assert log.requested_since(T - timedelta(minutes=1)) == ["NEW", "MID"]


def test_two_refreshers_racing_for_the_lease_get_it_once(db_engine):
    clock = FixedClock(T)
    leases = [SqlRefreshLease(db_engine, clock) for _ in range(8)]
    won: list[bool] = []
    start = threading.Barrier(len(leases))

    def race(lease: SqlRefreshLease, holder: str) -> None:
        start.wait()
        won.append(lease.acquire(holder, ttl_seconds=15, interval_seconds=2))

    threads = [threading.Thread(target=race, args=(lease, f"r{i}")) for i, lease in enumerate(leases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won) == [False] * 7 + [True]


def test_a_released_lease_is_taken_again_only_after_the_interval(db_engine):
    clock = FixedClock(T)
    lease = SqlRefreshLease(db_engine, clock)
    lease.acquire("a", ttl_seconds=15, interval_seconds=2)
    lease.release("a")

    clock.advance(1)
    early = lease.acquire("b", ttl_seconds=15, interval_seconds=2)
    clock.advance(1)
    due = lease.acquire("b", ttl_seconds=15, interval_seconds=2)

    assert (early, due) == (False, True)


def test_a_lease_never_released_expires_after_its_ttl(db_engine):
    clock = FixedClock(T)
    lease = SqlRefreshLease(db_engine, clock)
    lease.acquire("killed", ttl_seconds=15, interval_seconds=2)

    clock.advance(14)
    held = lease.acquire("next", ttl_seconds=15, interval_seconds=2)
    clock.advance(1)
    expired = lease.acquire("next", ttl_seconds=15, interval_seconds=2)

    assert (held, expired) == (False, True)


def test_only_the_holder_renews_or_releases(db_engine):
    clock = FixedClock(T)
    lease = SqlRefreshLease(db_engine, clock)
    lease.acquire("a", ttl_seconds=15, interval_seconds=0)

    renewed_by_other = lease.renew("b", ttl_seconds=15)
    lease.release("b")
    clock.advance(10)
    renewed = lease.renew("a", ttl_seconds=15)
    clock.advance(10)  # 20 s after taking it: alive only because it was renewed
    still_held = lease.acquire("b", ttl_seconds=15, interval_seconds=0)

    assert (renewed_by_other, renewed, still_held) == (False, True, False)


def test_the_last_finished_round_is_kept_for_every_process(db_engine):
    clock = FixedClock(T)
    lease = SqlRefreshLease(db_engine, clock)
    done = RefreshRound(started_at=T, finished_at=T + timedelta(seconds=3), symbols=250, refreshed=240,
                        calls=3, stopped="budget")
    before = lease.last_round()
    lease.acquire("a", ttl_seconds=15, interval_seconds=0)

    lease.release("a", done)

    assert before is None
    assert SqlRefreshLease(db_engine, clock).last_round() == done


def test_a_daily_job_is_claimed_once_a_day_across_processes(db_engine):
    clock = FixedClock(T)
    first, second = SqlRefreshLease(db_engine, clock), SqlRefreshLease(db_engine, clock)

    claims = [first.claim_daily("history-prune"), second.claim_daily("history-prune")]
    clock.advance(86399)
    claims.append(second.claim_daily("history-prune"))
    clock.advance(1)
    claims.append(second.claim_daily("history-prune"))

    assert claims == [True, False, False, True]


def test_an_unreachable_database_raises_storage_error():
    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:9/none",
                           connect_args={"connect_timeout": 1})

    with pytest.raises(StorageError):
        SqlRequestLog(engine).record({"BTC": T})
    with pytest.raises(StorageError):
        SqlRefreshLease(engine, FixedClock(T)).acquire("a", 15, 2)


@pytest.fixture
def pg_engine(engine):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM refresh_lease"))
    return engine


def test_a_refresher_whose_clock_runs_ahead_never_takes_a_live_lease(pg_engine):
    now = datetime.now(UTC)
    holder = SqlRefreshLease(pg_engine, FixedClock(now), database_time=True)
    ahead = SqlRefreshLease(pg_engine, FixedClock(now + timedelta(minutes=5)), database_time=True)
    assert holder.acquire("a", ttl_seconds=15, interval_seconds=60)

    stolen = ahead.acquire("b", ttl_seconds=15, interval_seconds=60)
    renewed = holder.renew("a", ttl_seconds=15)

    assert (stolen, renewed) == (False, True)


def test_a_refresher_whose_clock_runs_behind_still_takes_an_expired_lease(pg_engine):
    behind = SqlRefreshLease(pg_engine, FixedClock(datetime.now(UTC) - timedelta(minutes=5)),
                             database_time=True)
    with pg_engine.begin() as conn:
        conn.execute(text("INSERT INTO refresh_lease (name, holder, expires_at, round_started_at)"
                          " VALUES ('refresh', 'killed', now() - interval '1 second',"
                          " now() - interval '61 seconds')"))

    assert behind.acquire("next", ttl_seconds=15, interval_seconds=60)
