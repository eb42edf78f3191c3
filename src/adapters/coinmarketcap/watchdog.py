"""A watchdog that ends an HTTP exchange at its deadline, however slowly the server trickles.

`requests`' read timeout bounds each socket read, not the response: headers or a body sent a
byte a second never time out, and one library read may span many socket reads. The watchdog
shuts the exchange's socket down at the deadline, which wakes a blocked read at once (closing
the response from another thread does not reliably do that). The socket is handed over by the
connection class mounted on the session (`watch`), just before it waits for the
response, so the headers and the body are both covered.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from src.domain.deadline import Deadline

_current = threading.local()


class Watchdog:
    """While entered, the current thread's HTTP exchange is cut at `deadline`."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._active = True
        self.fired = False
        self.cut_off = False  # True once it shut the exchange's socket down
        self._timer = threading.Timer(deadline.remaining(), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._active = False
        _current.watchdog = None
        self._timer.cancel()

    def attach(self, sock: socket.socket | None) -> None:
        """Watch `sock` (the exchange's socket); cut it at once if the deadline has passed."""
        with self._lock:
            self._sock = sock
            if self.fired:
                self._cut()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._active:
                self._cut()

    def _cut(self) -> None:
        if self._sock is None:
            return
        self.cut_off = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _attach_current(sock: Any) -> None:
    watchdog = getattr(_current, "watchdog", None)
    if watchdog is not None and isinstance(sock, socket.socket):
        watchdog.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _attach_current(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _attach_current(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections hand their socket to the thread's Watchdog
    (through urllib3's public `pool_classes_by_scheme` and `ConnectionCls` hooks)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


def watch(session: requests.Session) -> requests.Session:
    """Mount the watched adapter on `session` for http and https; return it."""
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
