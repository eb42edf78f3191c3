"""One deadline for all of a request's upstream work (waits, retries, the conversion call)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """A point on a monotonic clock; everything a request does upstream must end before it.

    Made once per request by the service and handed to every provider call, so a request that
    first waits for another process's fetch, then calls, then converts, still ends in time.
    """

    __slots__ = ("_at", "_clock")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self._at

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f})"
