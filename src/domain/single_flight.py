"""Single-flight: identical calls in flight at the same moment in one process share one call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from src.domain.errors import ProviderTimeout

_T = TypeVar("_T")


class _Flight(Generic[_T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: _T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[_T]):
    """The first caller of a key runs the call; callers of the same key arriving while it runs
    wait for it and get its result, or its exception. Nothing is kept once the call ends (a
    later caller calls again): this shares a call, it caches nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[_T]] = {}

    def run(self, key: Hashable, call: Callable[[], _T], wait_seconds: float) -> _T:
        """`call()`'s result, shared with concurrent callers of `key`.

        A caller that waits longer than `wait_seconds` for another's call raises ProviderTimeout.
        """
        with self._lock:
            found = self._flights.get(key)
            leading = found is None
            flight = self._flights[key] = _Flight() if found is None else found
        if leading:
            try:
                flight.result = call()
            except BaseException as exc:
                flight.error = exc
            finally:
                with self._lock:
                    del self._flights[key]
                flight.done.set()
        elif not flight.done.wait(wait_seconds):
            raise ProviderTimeout("CoinMarketCap did not answer in time")
        if flight.error is not None:
            raise flight.error
        return flight.result  # type: ignore[return-value]  # set: the call returned
