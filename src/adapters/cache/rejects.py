"""Counting and logging cache values that are not ours (rate-limited: junk may arrive in bulk)."""

from __future__ import annotations

import logging
import threading
import time

from src.adapters.metrics import CACHE_ERRORS

logger = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS = 60.0
_lock = threading.Lock()
_last_logged: dict[str, float] = {}


def reject_value(reason: str) -> None:
    """Count a value under our keys that we refuse to read (it is served as a miss).

    Logged at most once a minute per reason, with the reason only: the value itself may be
    anything an attacker wrote, so it never reaches the log.
    """
    CACHE_ERRORS.labels("unreadable").inc()
    now = time.monotonic()
    with _lock:
        if now - _last_logged.get(reason, -LOG_INTERVAL_SECONDS) < LOG_INTERVAL_SECONDS:
            return
        _last_logged[reason] = now
    logger.warning("ignoring a cache value that is not ours (%s); treated as a miss", reason)
