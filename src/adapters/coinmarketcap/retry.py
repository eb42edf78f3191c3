"""The retry policy for CoinMarketCap calls: transient failures only, never past the deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from src.adapters.coinmarketcap.answers import Transient
from src.domain.deadline import Deadline

# An attempt with less time than this left cannot connect and read an answer: do not start it.
MIN_ATTEMPT_SECONDS = 0.1


class wait_retry_after(wait_base):
    """Honour the server's Retry-After hint (already capped when parsed); otherwise back off."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        return hinted if hinted is not None else self.fallback(retry_state)


class stop_before_deadline(stop_base):
    """Stop when the coming wait would leave no time for another attempt before the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: Any) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return upcoming + MIN_ATTEMPT_SECONDS > self.deadline.remaining()


def retrying(deadline: Deadline, *, max_attempts: int, backoff_seconds: float,
             sleep: Callable[[float], None]) -> Retrying:
    """A tenacity controller: retry Transient errors with exponential backoff and jitter (or the
    server's hint), at most `max_attempts` calls, every wait ending before `deadline`; the last
    error is re-raised as is."""
    return Retrying(
        retry=retry_if_exception_type(Transient),
        # `multiplier` needs tenacity>=9.2 (setup.cfg's lower bound).
        wait=wait_retry_after(
            wait_exponential_jitter(multiplier=backoff_seconds, max=4, jitter=0.25)),
        stop=stop_after_attempt(max_attempts) | stop_before_deadline(deadline),
        sleep=sleep,
        reraise=True,
    )
