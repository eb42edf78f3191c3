"""The hot path notes requested symbols in memory; the database sees one write per batch."""

from __future__ import annotations

import gc
import threading

from src.adapters.buffered_request_log import BufferedRequestLog, close_all
from src.domain.errors import StorageError
from tests.fakes import FixedClock
from tests.fakes_refresh import InMemoryRequestLog, wait_until

HOT = [f"H{i}" for i in range(50)]


def test_a_thousand_requests_cost_one_write_per_flush_not_one_per_request():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600)

    for i in range(1000):
        buffer.note([HOT[i % 50], HOT[(i * 7) % 50]])
    buffer.flush()

    assert len(target.writes) == 1
    assert set(target.last_requested) == set(HOT)


def test_many_distinct_symbols_are_written_before_the_interval_ends():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600, max_symbols=100)

    for i in range(100):
        buffer.note([f"T{i}"])

    assert wait_until(lambda: len(target.last_requested) == 100)
    assert len(target.writes) == 1


def test_a_symbol_requested_once_reaches_the_log_without_another_request():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=0.05)

    buffer.note(["BTC"])

    assert wait_until(lambda: "BTC" in target.last_requested)


def test_the_newest_request_time_of_a_symbol_wins():
    clock = FixedClock()
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, clock, flush_seconds=3600)

    buffer.note(["BTC"])
    clock.advance(30)
    buffer.note(["BTC"])
    buffer.record({"BTC": clock.now().replace(year=2020)})
    buffer.flush()

    assert target.last_requested == {"BTC": clock.now()}


def test_a_failed_write_keeps_the_symbols_for_the_next_flush():
    target = InMemoryRequestLog(fail_with=StorageError("database down"))
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600)
    buffer.note(["BTC", "ETH"])

    failed = buffer.flush()
    target.fail_with = None
    written = buffer.flush()

    assert (failed, written) == (0, 2)
    assert set(target.last_requested) == {"BTC", "ETH"}


def test_the_refresher_reading_through_the_buffer_sees_what_was_just_noted():
    clock = FixedClock()
    buffer = BufferedRequestLog(InMemoryRequestLog(), clock, flush_seconds=3600)

    buffer.note(["BTC"])

    assert buffer.requested_since(clock.now()) == ["BTC"]


def flusher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "request-log-flusher"]


def test_closing_writes_what_is_pending_and_stops_the_flusher_thread():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600)
    before = set(flusher_threads())
    buffer.note(["BTC"])

    buffer.close()

    assert "BTC" in target.last_requested
    # Its thread is gone (an earlier test's, still ending when `before` was taken, may go too).
    assert set(flusher_threads()) <= before


def test_a_closed_buffer_whose_last_write_fails_keeps_nothing_to_write_at_exit():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600)
    buffer.note(["BTC"])
    target.fail_with = StorageError("database gone")

    buffer.close()
    target.fail_with = None

    assert buffer.flush() == 0


def test_a_buffer_noted_again_after_closing_flushes_again():
    target = InMemoryRequestLog()
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=0.05)
    buffer.note(["BTC"])
    buffer.close()

    buffer.note(["ETH"])

    assert wait_until(lambda: "ETH" in target.last_requested)
    buffer.close()


def test_a_discarded_buffer_lets_its_flusher_thread_end():
    buffer = BufferedRequestLog(InMemoryRequestLog(), FixedClock(), flush_seconds=0.05)
    before = set(flusher_threads())
    buffer.note(["BTC"])
    started = set(flusher_threads()) - before

    del buffer
    gc.collect()

    assert started and wait_until(lambda: not any(t.is_alive() for t in started))


def test_close_all_closes_every_live_buffer():
    targets = [InMemoryRequestLog(), InMemoryRequestLog()]
    buffers = [BufferedRequestLog(t, FixedClock(), flush_seconds=3600) for t in targets]
    for buffer in buffers:
        buffer.note(["BTC"])

    close_all()

    assert all("BTC" in t.last_requested for t in targets)


def test_a_long_database_outage_never_grows_the_buffer_past_its_bound():
    target = InMemoryRequestLog(fail_with=StorageError("database down"))
    buffer = BufferedRequestLog(target, FixedClock(), flush_seconds=3600, max_symbols=10_000,
                                max_pending=100)

    for i in range(1000):
        buffer.note([f"T{i}"])
        if i % 50 == 0:
            buffer.flush()
    target.fail_with = None

    assert buffer.flush() == 100
