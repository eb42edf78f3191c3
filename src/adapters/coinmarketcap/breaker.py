"""A circuit breaker for CoinMarketCap: stop calling a failing upstream for a while."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from src.adapters.metrics import UPSTREAM_SHORT_CIRCUITS
from src.domain.errors import LimitVerdict, ProviderError, ProviderUnavailable

logger = logging.getLogger(__name__)


class CircuitOpen(ProviderUnavailable):
    """CoinMarketCap failed repeatedly; calls are refused until the cool-down ends."""


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive unavailable answers; while open, calls fail at
    once with the time left as `retry_after`. A limit verdict (spent credits, too many calls) is
    an answer: opening on it would hide its code and its reset time behind ours. After
    `cooldown_seconds` one trial call goes through (half-open): an answer closes the circuit, a
    failure opens it again, and a trial that ends any other way (an unexpected exception, an
    interrupted worker) proves nothing, so the next call may try again. No outcome can leave a
    trial running for ever.
    """

    def __init__(self, failure_threshold: int = 5, cooldown_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def trial_running(self) -> bool:
        return self._trial_running

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the block as one call through the breaker.

        Raises CircuitOpen (without running the block) while the circuit is open. The block's
        ProviderUnavailable counts as a failure, but for a limit verdict, and ProviderError as
        an answer (an unusable answer is still an answer); whatever else ends the block, a
        trial it held is ended.
        """
        trial = self._before_call()
        verdict: bool | None = None
        try:
            yield
            verdict = True
        except ProviderUnavailable as exc:
            # A limit verdict is an answer from an upstream that works, not a failure.
            verdict = isinstance(exc, LimitVerdict)
            raise
        except ProviderError:
            verdict = True
            raise
        finally:
            if verdict is True:
                self.record_answer()
            elif verdict is False:
                self.record_failure()
            elif trial:
                self._abandon_trial()

    def _before_call(self) -> bool:
        """Let a call through (True when it is the half-open trial) or raise CircuitOpen."""
        with self._lock:
            if self.opened_at is None:
                return False
            remaining = self.opened_at + self.cooldown_seconds - self.clock()
            if remaining > 0 or self._trial_running:
                UPSTREAM_SHORT_CIRCUITS.inc()
                raise CircuitOpen("CoinMarketCap is failing; not calling it for a while",
                                  retry_after=max(remaining, 1.0))
            self._trial_running = True
            return True

    def record_answer(self) -> None:
        with self._lock:
            if self.opened_at is not None:
                logger.warning("CoinMarketCap answers again; circuit closed")
            self.failures, self.opened_at, self._trial_running = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            half_open = self._trial_running
            self._trial_running = False
            if half_open or (self.opened_at is None and self.failures >= self.failure_threshold):
                self.opened_at = self.clock()
                logger.warning("CoinMarketCap failed %d time(s) in a row; circuit open for %.0f s",
                               self.failures, self.cooldown_seconds)

    def _abandon_trial(self) -> None:
        with self._lock:
            self._trial_running = False
