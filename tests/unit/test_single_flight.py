"""Identical conversion calls in flight at once share one call; nothing outlives it."""

from __future__ import annotations

import threading
import time

import pytest

from src.domain.errors import ProviderTimeout, ProviderUnavailable
from src.domain.single_flight import SingleFlight


def test_concurrent_callers_of_one_key_share_one_call_and_its_result():
    flights: SingleFlight[str] = SingleFlight()
    together, calls, results = threading.Barrier(8), [], []

    def slow_call() -> str:
        calls.append(1)
        time.sleep(0.3)  # far longer than the other threads need to join the flight
        return "answer"

    def request() -> None:
        together.wait(5)
        results.append(flights.run("EUR", slow_call, 5))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert len(calls) == 1
    assert results == ["answer"] * 8


def test_a_later_call_is_made_again_nothing_is_kept():
    flights: SingleFlight[int] = SingleFlight()
    counter = iter(range(10))

    assert [flights.run("EUR", lambda: next(counter), 1) for _ in range(3)] == [0, 1, 2]


def test_waiters_get_the_leaders_failure():
    flights: SingleFlight[int] = SingleFlight()
    started, release, errors = threading.Event(), threading.Event(), []

    def failing() -> int:
        started.set()
        release.wait(5)
        raise ProviderUnavailable("down")

    def call() -> None:
        try:
            flights.run("EUR", failing, 5)
        except ProviderUnavailable as exc:
            errors.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    started.wait(5)
    follower = threading.Thread(target=call)
    follower.start()
    release.set()
    leader.join(5)
    follower.join(5)

    assert len(errors) == 2 and errors[0] is errors[1]


def test_a_waiter_past_its_time_gets_a_timeout():
    flights: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: flights.run("EUR", lambda: started.set() or release.wait(5), 5))
    leader.start()
    started.wait(5)

    with pytest.raises(ProviderTimeout):
        flights.run("EUR", lambda: 1, 0.05)
    release.set()
    leader.join(5)
