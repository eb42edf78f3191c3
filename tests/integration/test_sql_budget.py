"""The credit governor's board in the database (no memcached): one budget for every process of a
deployment, on PostgreSQL and on the embedded SQLite default, with racing writers."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from src.adapters.budget.governor import SharedCreditGovernor
from src.adapters.sql.budget_board import SqlBoard
from src.domain.clock import SystemClock
from src.domain.errors import BudgetSpent
from src.domain.model import Purpose
from tests.conftest import migrate_database


@pytest.fixture(params=["postgresql", "sqlite"])
def board_engine(request, database_url, tmp_path):
    url = database_url if request.param == "postgresql" else f"sqlite:///{tmp_path}/budget.db"
    if request.param == "sqlite":
        migrate_database(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM budget_counters"))
    yield engine
    engine.dispose()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counters_add_give_back_and_expire(board_engine):
    clock = Clock()
    board = SqlBoard(board_engine, now=clock)

    assert board.add("a", 3, ttl=60) == 3
    assert board.add("a", 2, ttl=60) == 5
    board.give_back("a", 4)
    board.give_back("a", 9)  # never below zero
    assert board.counts(["a", "b"]) == [0, 0]
    assert board.add("a", 1, ttl=60) == 1
    clock.now += 61
    assert board.counts(["a"]) == [0]  # expired: absent
    assert board.add("a", 7, ttl=60) == 7  # a new counter, a new life


def test_raising_to_a_figure_is_idempotent(board_engine):
    board = SqlBoard(board_engine, now=Clock())

    for _ in range(3):
        board.raise_to("elsewhere", 15, ttl=60)
    board.raise_to("elsewhere", 10, ttl=60)

    assert board.counts(["elsewhere"]) == [15]


def test_notes_are_written_and_read_back_until_they_expire(board_engine):
    clock = Clock()
    board = SqlBoard(board_engine, now=clock)

    board.write_note("n", '{"x": 1}', ttl=10)
    board.write_note("n", '{"x": 2}', ttl=10)

    assert board.notes(["n", "m"]) == ['{"x": 2}', None]
    clock.now += 11
    assert board.notes(["n"]) == [None]


def test_racing_processes_never_spend_beyond_the_day(board_engine):
    # Eight workers of one deployment, each with its own governor over the same database.
    governors = [SharedCreditGovernor(board=SqlBoard(board_engine), clock=SystemClock(),
                                      daily_credits=20, calls_per_minute=1000)
                 for _ in range(8)]
    allowed: list[int] = []
    together = threading.Barrier(8)

    def spend(governor) -> None:
        together.wait(5)
        count = 0
        for _ in range(10):
            try:
                governor.reserve(Purpose.REQUEST, 1)
                count += 1
            except BudgetSpent:
                pass
        allowed.append(count)

    threads = [threading.Thread(target=spend, args=(g,)) for g in governors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(allowed) == 20
    assert {g.usage()["today"]["credits_used"] for g in governors} == {20}
