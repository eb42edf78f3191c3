"""BufferedRequestLog: requested symbols gathered in process memory, written in batches."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime

from src.domain.errors import StorageError
from src.domain.ports import Clock, RequestLog

logger = logging.getLogger(__name__)

# Every buffer alive in this process, so that exit can close them all (weak: a discarded app's
# buffer is not kept alive for it).
_LIVE: weakref.WeakSet[BufferedRequestLog] = weakref.WeakSet()


class BufferedRequestLog(RequestLog):
    """Notes requested symbols in this process and writes them to `target` in one statement
    at most every `flush_seconds`, or as soon as `max_symbols` distinct symbols are waiting.

    The hot path (`note`) takes a lock and updates a dict: no I/O. The writes happen in a
    daemon thread, started lazily in the process that notes (so a gunicorn worker forked from a
    preloading master starts its own), for two reasons: a request never waits for a write (a
    slow or locked database would otherwise stall one request per flush), and symbols noted by
    a worker that then goes idle still reach the database within `flush_seconds`. A failed
    write keeps the symbols for the next flush. `close` (called for every live buffer at exit)
    stops the thread and writes the rest; the thread also ends when the buffer is discarded.
    """

    def __init__(self, target: RequestLog, clock: Clock, *, flush_seconds: float = 2.0,
                 max_symbols: int = 500, max_pending: int = 50_000) -> None:
        self.target = target
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.max_symbols = max_symbols
        # Only served symbols (coins that exist) are noted, so this bound is never reached in
        # practice; it keeps a long database outage from growing the buffer without end.
        self.max_pending = max_pending
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flusher_pid: int | None = None
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._failing = False
        _LIVE.add(self)

    # -- the hot path -------------------------------------------------------------------------

    def note(self, symbols: Iterable[str]) -> None:
        """Note that `symbols` were requested now; written by the flusher thread shortly."""
        self.record(dict.fromkeys(symbols, self.clock.now()))

    def record(self, requested: Mapping[str, datetime]) -> None:
        if not requested:
            return
        with self._lock:
            self._merge(requested)
            full = len(self._pending) >= self.max_symbols
        if self._flusher_pid != os.getpid():
            self._start_flusher()
        if full:
            self._wake.set()

    # -- the rest -----------------------------------------------------------------------------

    def requested_since(self, since: datetime) -> list[str]:
        self.flush()
        return self.target.requested_since(since)

    def flush(self) -> int:
        """Write what is pending now, in one call to the target; return how many symbols."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            self.target.record(batch)
        except StorageError:
            if not self._failing:
                logger.warning("recording %d requested symbol(s) failed; keeping them for the next"
                               " flush", len(batch), exc_info=True)
            self._failing = True
            with self._lock:
                self._merge(batch)
            return 0
        self._failing = False
        return len(batch)

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Stop the flusher thread and write what is pending, once: what that write cannot
        store is dropped (nobody is left to retry it). Noting again starts a new thread."""
        with self._lock:
            thread, self._flusher, self._flusher_pid = self._flusher, None, None
            stop, self._stop = self._stop, threading.Event()
        stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_seconds)
        self._wake.clear()
        self._flush_quietly()
        with self._lock:
            self._pending = {}

    def _merge(self, requested: Mapping[str, datetime]) -> None:
        """Add `requested` to the buffer (newest time wins); the caller holds the lock."""
        pending = self._pending
        for symbol, at in requested.items():
            known = pending.get(symbol)
            if known is None:
                if len(pending) >= self.max_pending:
                    continue
                pending[symbol] = at
            elif at > known:
                pending[symbol] = at

    def _start_flusher(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._flusher_pid == pid:
                return
            self._flusher_pid = pid
            # A weak reference: the thread must not keep a discarded buffer (and its app) alive.
            self._flusher = threading.Thread(
                target=_flush_forever, args=(weakref.ref(self), self._wake, self._stop),
                name="request-log-flusher", daemon=True)
            self._flusher.start()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # the flusher thread must outlive any one failure
            logger.exception("flushing requested symbols failed")


def _flush_forever(buffer_ref: weakref.ref, wake: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        buffer = buffer_ref()
        if buffer is None:
            return
        seconds = buffer.flush_seconds
        del buffer  # not held while waiting
        wake.wait(seconds)
        wake.clear()
        buffer = buffer_ref()
        if buffer is None or stop.is_set():
            return
        buffer._flush_quietly()
        del buffer


def close_all() -> None:
    """Close every buffer alive in this process (at exit, and after each test)."""
    for buffer in list(_LIVE):
        buffer.close()


atexit.register(close_all)
